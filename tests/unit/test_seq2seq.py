"""The encoder-decoder: masks, leakage, padding, probes' names, and decoding."""

from __future__ import annotations

import pytest
import torch

from attnlab.config.schema import ModelConfig
from attnlab.models import Seq2Seq, build, check_causal
from attnlab.models.attention import Attention
from attnlab.models.generate import beam_search, greedy
from attnlab.probes.capture import capture

V = 20


def tiny(arch="seq2seq", **over) -> torch.nn.Module:
    torch.manual_seed(0)
    kw = {"d_model": 32, "n_layers": 2, "mixer": {"n_heads": 4}, "mlp": True, "max_seq_len": 24}
    if arch == "seq2seq":
        kw["n_encoder_layers"] = 2
    cfg = ModelConfig(arch=arch, pos="learned", **{**kw, **over})
    return build(cfg, V).eval()


def test_config_rejects_conv_and_rope_in_seq2seq():
    with pytest.raises(ValueError, match="plain attention"):
        ModelConfig(arch="seq2seq", mixer={"conv_kernel": 3})
    with pytest.raises(ValueError, match="positions"):
        ModelConfig(arch="seq2seq", pos="rope")
    with pytest.raises(ValueError, match="n_encoder_layers"):
        ModelConfig(n_encoder_layers=2)


def test_decoder_is_causal_and_encoder_is_not():
    m = tiny()
    assert isinstance(m, Seq2Seq)
    assert check_causal(m, V, 12)["max_change"] <= 1e-5
    src = torch.randint(1, V, (2, 10))
    tgt = torch.randint(1, V, (2, 8))
    base = m(tgt, src)
    src2 = src.clone()
    src2[:, -1] = (src2[:, -1] % (V - 1)) + 1  # change the last source character
    assert (m(tgt, src2)[:, 0] - base[:, 0])[..., :V].abs().max() > 1e-4  # all see it


def test_source_padding_changes_nothing():
    m = tiny()
    src = torch.randint(1, V, (1, 7))
    tgt = torch.randint(1, V, (1, 5))
    padded = torch.cat([src, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    diff = (m(tgt, src) - m(tgt, padded))[..., :V].abs().max()
    assert diff < 1e-5


def test_explicit_path_matches_sdpa_with_masks():
    torch.manual_seed(1)
    attn = Attention(16, n_heads=4, causal=False).eval()
    x, mem = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    key_mask = torch.ones(3, 7, dtype=torch.bool)
    key_mask[0, 4:] = False
    fast = attn(x, memory=mem, key_mask=key_mask)
    with capture(attn) as cache:
        slow = attn(x, memory=mem, key_mask=key_mask)
    assert torch.allclose(fast, slow, atol=1e-5)
    pat = cache["hook_pattern"]  # (B, H, T, S)
    assert pat.shape == (3, 4, 5, 7) and pat[0, :, :, 4:].abs().max() == 0
    causal = Attention(16, n_heads=4, causal=True).eval()
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    fast = causal(x, key_mask=mask)
    with capture(causal):
        slow = causal(x, key_mask=mask)
    assert torch.allclose(fast, slow, atol=1e-5)
    with pytest.raises(ValueError, match="causal=False"):
        causal(x, memory=mem)


def test_probe_names():
    m = tiny()
    with capture(m, lambda n: n.endswith("hook_pattern")) as cache:
        m(torch.randint(1, V, (1, 4)), torch.randint(1, V, (1, 6)))
    assert cache["encoder.1.attn.hook_pattern"].shape == (1, 4, 6, 6)
    assert cache["decoder.0.attn.hook_pattern"].shape == (1, 4, 4, 4)
    assert cache["decoder.1.cross.hook_pattern"].shape == (1, 4, 4, 6)


def test_learned_positions_start_sinusoidal():
    from attnlab.models.positional import sinusoid_table

    m = tiny()
    assert torch.allclose(m.enc_pos.weight, sinusoid_table(24, 32))
    assert torch.allclose(
        tiny(pos_init="normal").enc_pos.weight.std(), torch.tensor(0.01), atol=3e-3
    )


def naive_greedy(model, prompt, max_new, eos, src=None):
    """One row at a time, the full model each step, argmax: the reference."""
    out = []
    for b in range(prompt.shape[0]):
        seq = prompt[b : b + 1]
        for _ in range(max_new):
            args = (seq,) if src is None else (seq, src[b : b + 1])
            nxt = model(*args)[0, -1].argmax()
            seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
            if nxt == eos:
                break
        out.append(seq[0, prompt.shape[1] :].tolist())
    return out


def _trim(row, eos):
    """Tokens through the first eos (after it the decoders write padding)."""
    row = list(row)
    return row[: row.index(eos) + 1] if eos in row else row


@pytest.mark.parametrize("arch", ["seq2seq", "decoder"])
def test_greedy_is_argmax_step_by_step(arch):
    m = tiny(arch)
    eos = 2
    if arch == "seq2seq":
        src = torch.randint(3, V, (4, 6))
        src[1, 4:] = 0
        prompt, lengths = torch.ones(4, 1, dtype=torch.long), torch.ones(4, dtype=torch.long)
        got = greedy(m, prompt, lengths, 8, eos, src=src)
        ref = [
            naive_greedy(m, prompt[b : b + 1], 8, eos, src[b : b + 1, : int((src[b] > 0).sum())])[0]
            for b in range(4)
        ]
    else:  # prompts of different lengths, right-padded
        lengths = torch.tensor([3, 5, 2, 4])
        prompt = torch.randint(3, V, (4, 5))
        for b, n in enumerate(lengths):
            prompt[b, n:] = 0
        got = greedy(m, prompt, lengths, 8, eos)
        ref = [naive_greedy(m, prompt[b : b + 1, : lengths[b]], 8, eos)[0] for b in range(4)]
    assert [_trim(r, eos) for r in got.tolist()] == ref
    assert not m.training


@pytest.mark.parametrize("arch", ["seq2seq", "decoder"])
def test_beam_width_one_is_greedy_and_wider_beams_score_no_worse(arch):
    m = tiny(arch)
    eos, B = 2, 6
    torch.manual_seed(3)
    src = torch.randint(3, V, (B, 6)) if arch == "seq2seq" else None
    if src is None:
        prompt, lengths = torch.randint(3, V, (B, 4)), torch.full((B,), 4)
    else:
        prompt, lengths = torch.ones(B, 1, dtype=torch.long), torch.ones(B, dtype=torch.long)
    g = greedy(m, prompt, lengths, 7, eos, src=src)
    b1 = beam_search(m, prompt, lengths, 7, eos, width=1, src=src)
    assert torch.equal(g, b1)

    def logprob(out):
        """Sum of log-probabilities of each row's tokens through its first eos."""
        total = torch.zeros(B)
        for b in range(B):
            toks = _trim(out[b].tolist(), eos)
            seq = torch.cat([prompt[b, : lengths[b]], torch.tensor(toks, dtype=torch.long)])[None]
            args = (seq,) if src is None else (seq, src[b : b + 1])
            lp = m(*args)[0].log_softmax(-1)
            start = int(lengths[b]) - 1
            total[b] = sum(lp[start + i, t] for i, t in enumerate(toks))
        return total

    b4 = beam_search(m, prompt, lengths, 7, eos, width=4, src=src)
    assert (logprob(b4) >= logprob(g) - 1e-4).all()
    with pytest.raises(ValueError, match="width"):
        beam_search(m, prompt, lengths, 7, eos, width=0, src=src)


def test_decoder_positions_can_differ_from_the_encoders():
    from attnlab.config import ModelConfig
    from attnlab.models import build
    from attnlab.models.positional import LearnedPositions

    base = {"arch": "seq2seq", "d_model": 16, "n_layers": 1, "mixer": {"n_heads": 2}}
    m = build(ModelConfig(**base, pos="sinusoidal", decoder_pos="none", vocab_size=12))
    assert m.enc_pos is not None and m.dec_pos is None
    m = build(ModelConfig(**base, pos="sinusoidal", decoder_pos="learned", vocab_size=12))
    assert isinstance(m.dec_pos, LearnedPositions) and not isinstance(m.enc_pos, LearnedPositions)
    torch.testing.assert_close(m.dec_pos.weight, m.enc_pos.table[: len(m.dec_pos.weight)])

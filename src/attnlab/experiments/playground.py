"""`attnlab playground`: the fourth write-up's attention exercises, on the models' own
attention function (`Attention.attend_explicit`: scores q·k/√E, softmax, weights @ v).

Four keys along the axes of a 4-dimensional space, each of length 10, and four values:

- copying: a query aligned with k₃ gets weight ≈ 1 on it and returns ≈ v₃;
- averaging: a query equally aligned with k₁ and k₂ splits its weight 1/2 : 1/2 and
  returns the mean of v₁ and v₂;
- changing one key: with that averaging query, k₂ is scaled from 0.9 to 1.1 × its
  length; its weight is σ(q·(k₂ − k₁)/√E) = σ(50 (s − 1)), 0.5 where k₂ = k₁, and the
  output slides from v₁ to v₂ (a 10% longer key already takes 99% of the weight).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from attnlab.models.attention import Attention
from attnlab.report.plots import line_plot

E = 4
KEYS = 10.0 * torch.eye(E)  # (S=4, E): k_i = 10 e_i
VALUES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]) * torch.tensor(
    [[1.0], [2.0], [3.0], [4.0]]
)  # (S, 2): distinct directions and lengths


def attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor):
    """(output (Dv,), weights (S,)) of one query through the models' attention function."""
    layer = Attention(E, 0, n_heads=1, causal=False)  # its weights are not used
    q = query.view(1, 1, 1, E)  # (B, H, T, E)
    k = keys.view(1, 1, -1, E)  # (B, H, S, E)
    v = values.view(1, 1, keys.shape[0], -1)  # (B, H, S, Dv)
    with torch.no_grad():
        out, pattern = layer.attend_explicit(q, k, v)
    return out[0, 0, 0], pattern[0, 0, 0]


def run_playground(out: Path, echo=print) -> dict:
    """Run the three demonstrations, print their numbers, write plots and JSON to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = {}
    fmt = lambda t: "[" + ", ".join(f"{x:.4f}" for x in t.tolist()) + "]"  # noqa: E731
    echo(
        f"keys k1..k4 = 10·e1..e4 (E = {E}, scores scaled by 1/√E); values v1..v4 = "
        + ", ".join(fmt(v) for v in VALUES)
    )
    for name, q, what in (
        ("copying", torch.tensor([0.0, 0.0, 10.0, 0.0]), "aligned with k3"),
        ("averaging", torch.tensor([10.0, 10.0, 0.0, 0.0]), "equally aligned with k1 and k2"),
    ):
        o, w = attend(q, KEYS, VALUES)
        echo(f"\n{name}: query {fmt(q)} ({what})\n  weights {fmt(w)}\n  output  {fmt(o)}")
        res[name] = {"query": q.tolist(), "weights": w.tolist(), "output": o.tolist()}
        line_plot(
            {"weight": (list(range(1, 5)), w.tolist())},
            "key",
            "attention weight",
            f"{name}: query {what}",
            out / f"{name}.png",
        )
    q = torch.tensor([10.0, 10.0, 0.0, 0.0])
    scales = [round(0.9 + i / 100, 2) for i in range(21)]  # k2 = s · 10 e2, s in [0.9, 1.1]
    rows = []
    for s in scales:
        keys = KEYS.clone()
        keys[1] = s * KEYS[1]
        o, w = attend(q, keys, VALUES)
        rows.append({"scale": s, "weights": w.tolist(), "output": o.tolist()})
    echo("\nchanging one key: k2 = s · 10 e2, query as in averaging")
    for r in rows[::5]:
        echo(
            f"  s = {r['scale']:.1f}: weights {fmt(torch.tensor(r['weights']))}, "
            f"output {fmt(torch.tensor(r['output']))}"
        )
    res["key_change"] = rows
    line_plot(
        {f"weight on k{i + 1}": (scales, [r["weights"][i] for r in rows]) for i in range(2)}
        | {f"output[{j}]": (scales, [r["output"][j] for r in rows]) for j in range(2)},
        "k2 length / k1 length",
        "weight, output",
        "changing k2: weights move along a logistic curve, the output from v1 to v2",
        out / "key_change.png",
    )
    (out / "playground.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    echo(f"\nwritten: {out}/copying.png, averaging.png, key_change.png, playground.json")
    return res

"""Every committed report a reader opens links only files that are committed: each image
and each relative link of every Markdown and HTML file under `docs/` (and the README)
resolves to a file git tracks. A clean clone has nothing else, so a link into an ignored
folder (a run's `plots/`) is broken there even when it works on the machine that wrote
it."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from tests.helpers import ROOT, tracked

MD_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_LINK = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def links(path: Path) -> list[str]:
    """The link targets of a Markdown file (outside code blocks) or an HTML file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".html":
        return HTML_LINK.findall(text)
    return MD_LINK.findall(re.sub(r"```.*?```", "", text, flags=re.S))


def broken(files: set[str], root: Path = ROOT) -> list[str]:
    """Every relative link of the tracked Markdown / HTML files under docs/ (and the
    README) that names no tracked file or folder."""
    folders = {str(Path(f).parent) for f in files} | {
        str(p) for f in files for p in Path(f).parents
    }
    bad = []
    for rel in sorted(files):
        if not (rel == "README.md" or rel.startswith("docs/")):
            continue
        if not rel.endswith((".md", ".html")):
            continue
        for link in links(root / rel):
            target = unquote(link.split("#")[0].split("?")[0])
            if not target or re.match(r"^[a-z]+:", target) or target.startswith("/"):
                continue  # an anchor, a URL, a data: image
            norm = _normalise((Path(rel).parent / target).as_posix())
            if norm not in files and norm not in folders:
                bad.append(f"{rel}: {link}")
    return bad


def _normalise(path: str) -> str:
    parts: list[str] = []
    for p in Path(path).parts:
        if p == "..":
            if parts:
                parts.pop()
        elif p != ".":
            parts.append(p)
    return "/".join(parts)


def test_no_broken_link_or_image_under_docs():
    bad = broken(tracked())
    assert not bad, f"{len(bad)} broken links, e.g.:\n" + "\n".join(bad[:20])


def test_the_checker_finds_a_broken_link(tmp_path):
    (tmp_path / "docs" / "img").mkdir(parents=True)
    (tmp_path / "docs" / "img" / "x.png").write_bytes(b"")
    (tmp_path / "docs" / "a.md").write_text(
        "![x](img/x.png) [y](../README.md#top) [web](https://x.org) ![p](plots/p.png)\n"
        "```\n![in a code block](nope.png)\n```\n"
    )
    (tmp_path / "docs" / "b.html").write_text('<img src="img/x.png"><a href="gone.md">')
    (tmp_path / "README.md").write_text("[a](docs/a.md)")
    files = {"docs/a.md", "docs/b.html", "docs/img/x.png", "README.md"}
    assert broken(files, tmp_path) == ["docs/a.md: plots/p.png", "docs/b.html: gone.md"]
    assert _normalise("docs/../docs/./img/x.png") == "docs/img/x.png"

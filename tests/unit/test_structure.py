"""The package's shape: imports go downward only, the task kind is decided in the task
registry alone, and only `attnlab.run_dir` spells a run directory's file names.

Read from the source with `ast` (module-level imports and imports inside functions).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

SRC = ROOT / "src" / "attnlab"

# bottom to top: a unit may import only from units before it (and from itself)
LAYERS = [
    "errors",
    "stats",
    "run_dir",
    "config",
    "data",
    "models",
    "train",
    "probes",
    "interop",
    "report",
    "tasks",
    "runs",
    "experiments",
    "bench",
    "cli",
]
ROOT_ONLY = {"__init__", "__main__"}


def _unit(path: Path) -> str:
    """The top-level unit of a source file: `train` for train/loop.py, `cli` for cli.py."""
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _imported_units(path: Path) -> set[str]:
    """attnlab units a file imports, at any depth (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "attnlab":
                continue
            if len(parts) > 1:
                out.add(parts[1])
            else:  # from attnlab import x
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "attnlab" and len(parts) > 1:
                    out.add(parts[1])
    return out - {"__version__"}


def test_every_unit_has_a_layer():
    units = {_unit(p) for p in _sources()} - ROOT_ONLY
    assert units <= set(LAYERS), f"place {sorted(units - set(LAYERS))} in LAYERS"


def test_imports_go_downward_only():
    rank = {u: i for i, u in enumerate(LAYERS)}
    wrong = []
    for path in _sources():
        unit = _unit(path)
        if unit in ROOT_ONLY:
            continue
        for dep in _imported_units(path):
            if dep in rank and rank[dep] > rank[unit]:
                wrong.append(f"{path.relative_to(SRC)} imports attnlab.{dep}")
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


# what deciding the task kind looks like: its tags as string constants, the config fields
# that name it, and the task-specific split classes
TASK_WORDS = {
    "classifier",
    "classification",
    "seq2seq",
    "piglatin",
    "translation",
    "lm_text",
    "repeat_tokens",
    "mqar",
    "copying",
    "selective_copying",
    "induction_heads",
}
TASK_TYPES = {"TranslationSplit", "ClassificationSplit", "TokenSplit", "RowSplit"}


def _decides_task(node: ast.AST) -> bool:
    """A test of the task kind: a task tag, `.arch` / `.task`, or a task's split class."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and sub.value in TASK_WORDS:
            return True
        if isinstance(sub, ast.Attribute) and sub.attr in ("arch", "task"):
            return True
        if isinstance(sub, ast.Name) and sub.id in TASK_TYPES:
            return True
    return False


def _task_branches(path: Path) -> list[str]:
    """Comparisons, membership tests and isinstance calls that decide the task kind, and
    tables looked up by it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        is_test = isinstance(node, ast.Compare) or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("isinstance", "issubclass", "hasattr")
        )
        if is_test and _decides_task(node):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        elif isinstance(node, ast.Subscript) and any(
            isinstance(sub, ast.Attribute) and sub.attr in ("arch", "task")
            for sub in ast.walk(node.slice)
        ):
            found.append(f"{path.name}:{node.lineno} a table looked up by task")
        elif isinstance(node, ast.Match):
            found.append(f"{path.name}:{node.lineno} match")
    return found


@pytest.mark.parametrize("package", ["train", "probes", "report"])
def test_no_branch_on_the_task_kind(package):
    found = [hit for p in sorted((SRC / package).rglob("*.py")) for hit in _task_branches(p)]
    assert not found, f"attnlab.{package} decides the task kind:\n" + "\n".join(found)


def test_run_directory_file_names_live_in_one_module():
    from attnlab import run_dir

    names = set(run_dir.FILE_NAMES)
    found = []
    for path in _sources():
        if path.name == "run_dir.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and (
                text in names
                or any(text.endswith("/" + n) or text.startswith(n + "/") for n in names)
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {text!r}")
    assert not found, "run-directory file names outside attnlab.run_dir:\n" + "\n".join(found)

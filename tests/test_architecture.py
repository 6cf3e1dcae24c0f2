"""The package's shape: layers import only downward, no import circles, small modules.

The import graph is read statically (ast) from every module of `sketch_rnn/`, imports
inside functions included, so a lazy import cannot hide a circle or an upward reach.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sketch_rnn"

# Layer of each part of the package (the longest matching name wins); a module may import
# only from its own layer or lower ones (ARCHITECTURE.md). quickdraw sits just above data:
# `download` checks a fetched file with the data loader, never the other way round.
# evaluation sits above generation (its metrics decode with the sampler), except its split
# losses, pure model and data code, which sit below training: the trainer validates with them.
LAYERS = {
    "core": 0,
    "data": 1, "quickdraw": 1.5,
    "model": 2,
    "evaluation.losses": 2.5,
    "training": 3,
    "generation": 4,
    "evaluation": 4.5,
    "serving": 5,
    "api": 5.5,
    "cli": 6, "notebook": 6,
    "__init__": 7, "__main__": 7, "train": 7, "sample": 7,
}
MAX_LINES = 420  # "about 400"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every sketch_rnn module this file imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sketch_rnn")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("sketch_rnn"):
                continue
            # `from pkg import mod` names a module when pkg/mod.py exists
            subs = [f"{target}.{a.name}" for a in node.names
                    if (PACKAGE.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(
                        ".py").exists()]
            found |= set(subs) or {target}
    return found - {name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> float:
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    return LAYERS["__init__"]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A list of modules forming an import circle, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_circle():
    """The checker itself: a graph with a circle is caught, one without is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_resolves_relative_imports():
    edges = graph()
    assert "sketch_rnn.core.errors" in edges["sketch_rnn.core.hparams"]
    assert "sketch_rnn.model.vae" in edges["sketch_rnn.model.build"]


def test_every_module_has_a_layer():
    """The longest name wins: the split losses sit below training, the rest of evaluation
    above generation."""
    assert layer("sketch_rnn.evaluation.losses") < layer("sketch_rnn.training.trainer")
    assert layer("sketch_rnn.generation.sampling") < layer("sketch_rnn.evaluation.report")
    assert all(m == "sketch_rnn" or m.split(".")[1] in {k.split(".")[0] for k in LAYERS}
               for m in graph())


def test_no_import_circles():
    assert find_cycle(graph()) is None


def test_layers_import_only_downward():
    upward = sorted(f"{src} -> {dst}" for src, dsts in graph().items() for dst in dsts
                    if dst.startswith("sketch_rnn.") and layer(dst) > layer(src))
    assert upward == []


def test_only_the_cli_knows_argparse():
    users = sorted(module_name(p) for p in PACKAGE.rglob("*.py")
                   if "argparse" in {a.name for n in ast.walk(ast.parse(p.read_text()))
                                     if isinstance(n, ast.Import) for a in n.names})
    assert all(u.startswith("sketch_rnn.cli") for u in users), users


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: module_name(p))
def test_modules_are_small(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_info_reads_json_only() -> None:
    """`sketch-rnn info` (like convert, download, stats) starts without TensorFlow."""
    from conftest import frameworks_imported_by

    code = ("from sketch_rnn.cli import main\n"
            "assert main(['info', 'checkpoints/sheep', '--json']) == 0")
    assert frameworks_imported_by(code, cwd=PACKAGE.parent) == []


def test_experiments_stay_out_of_the_product():
    """benchmarks/ holds benchmarks only (`bench_*.py`, modules that a benchmark imports, and
    `record.py` with the results it keeps in `results/`), and neither it nor the package
    reaches into studies/ or fuzz/ (an experiment or a fuzz target may use the product, never
    the other way round)."""
    root = PACKAGE.parent
    benches = list((root / "benchmarks").glob("bench_*.py"))
    imported = {(n.module or "") for b in benches for n in ast.walk(ast.parse(b.read_text()))
                if isinstance(n, ast.ImportFrom) and not n.level}
    assert sorted(p.name for p in (root / "benchmarks").iterdir()
                  if not p.name.startswith(("bench_", "__pycache__"))
                  and p.name not in ("record.py", "results")
                  and not (p.suffix == ".py" and p.stem in imported)) == []
    study_modules = {p.stem for p in (root / "studies").rglob("*.py")} | {"fuzz"}
    for path in [*PACKAGE.rglob("*.py"), *(root / "benchmarks").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "studies" not in text, path
        tops = {a.name.split(".")[0] for n in ast.walk(ast.parse(text))
                if isinstance(n, ast.Import) for a in n.names}
        tops |= {(n.module or "").split(".")[0] for n in ast.walk(ast.parse(text))
                 if isinstance(n, ast.ImportFrom) and not n.level}
        assert not tops & study_modules, (path, tops & study_modules)


def test_domain_code_reports_through_logging_not_print():
    """Only the cli (and notebook.py at its level) writes to the terminal."""
    printing = sorted(module_name(p) for p in PACKAGE.rglob("*.py")
                      if layer(module_name(p)) < LAYERS["cli"]
                      and any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                              and n.func.id == "print" for n in ast.walk(ast.parse(p.read_text()))))
    assert printing == []


def private_reach_ins(path: Path) -> list[str]:
    """`from sketch_rnn.x import _name` and `x._name` on a sketch_rnn module bound by an
    import, in one module: names with one leading underscore are their module's own."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                "sketch_rnn")):
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{node.module} import {a.name}")
                modules.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names
                        if a.name.startswith("sketch_rnn")}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_the_private_name_finder_finds_planted_reach_ins(tmp_path):
    planted = tmp_path / "m.py"
    planted.write_text("from .dataset import _scan, load_data\nfrom . import stats\n"
                       "import numpy as np\nx = stats._pooled(np._NoValue)\n")
    assert private_reach_ins(planted) == ["dataset import _scan", "stats._pooled"]


def test_no_private_name_is_imported_from_another_module():
    reach_ins = {module_name(p): found for p in PACKAGE.rglob("*.py")
                 if (found := private_reach_ins(p))}
    assert reach_ins == {}


def test_architecture_md_names_every_module():
    """Each module of a layer's package is named (in backticks) in that package's row of
    ARCHITECTURE.md's layer table, so that a newcomer finds where a concern lives."""
    import re

    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| [^|]+ \| `sketch_rnn/(\w+)/` \| (.*) \|$", text, re.M))
    missing = sorted(f"{pkg.name}.{p.stem}" for pkg in PACKAGE.iterdir() if pkg.is_dir()
                     and (pkg / "__init__.py").exists() for p in pkg.glob("*.py")
                     if p.stem != "__init__" and f"`{p.stem}`" not in rows.get(pkg.name, ""))
    assert missing == []

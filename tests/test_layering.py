"""The floors of aefast (docs/architecture.md), read from the source with `ast`: no import runs from a lower floor
up to a higher one, and no files import each other in a circle. Imports inside functions count (they run later,
but they are still a dependency), relative and absolute alike.

Rule: a module may import a module of its own unit (circles aside) or any unit on a strictly lower line of FLOORS.
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Bottom up. Each line is (floor number in docs/architecture.md, units on that line). Units on one line may not
# import each other; a unit is a module or package (its submodules included), matched by the longest prefix.
FLOORS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("aefast.errors",)),
    (0, ("aefast._io",)),             # atomic writes and disk reservation: raises DiskFullError from errors
    (1, ("aefast.model",)),
    (1, ("aefast",)),                 # the package face: imports floors 0-1 at once, its engine names lazily
    (2, ("aefast.data", "aefast.interop")),   # interop: ONNX / PyTorch models in and out; engine.load reads .onnx
    (3, ("aefast.engine",)),
    (4, ("aefast.export",)),          # offline work on a model (int8 calibration means)
    (4, ("aefast.keras_io",)),        # the Keras exporter: may use export
    (4, ("aefast.train", "aefast.bench", "aefast.dask")),   # may use the exporters, not each other
    (4, ("aefast.analyze",)),         # the study: trains models, so it may use train
    (5, ("aefast.cli", "aefast.__main__", "*.__main__")),   # command lines; every `python -m` entry point
]
# Modules that belong to another unit than their path says.
UNIT_OVERRIDES = {
    "aefast.modelfile": "aefast.model",            # the model file's original import path: a re-export
    "aefast.engine.calibration": "aefast.export",  # old path of aefast.export.calibration (+ corrected_bias)
    "aefast._core": "aefast.engine",               # the compiled kernels, loaded by aefast.engine.backend
}
# Units importable as a whole by a lower unit's lazy attribute: the face resolves `from aefast import X` for these
# names to the module that defines X (aefast/__init__.py _LAZY).
FACE = "aefast"

@dataclass(frozen=True)
class Edge:
    src: str      # module name
    dst: str
    path: str     # importer's file, relative to the root
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def modules(root: Path, package: str) -> dict[str, str]:
    """module name -> file path relative to root, for every .py file under root/package."""
    found = {}
    for f in sorted((root / package).rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = f.relative_to(root).as_posix()
    return found


def import_edges(root: Path, package: str, extra_modules=(), lazy: dict[str, str] | None = None) -> list[Edge]:
    """Every import of a module of `package` by a module of `package`: ast.Import and ast.ImportFrom anywhere in
    the file (functions, try blocks, if blocks), relative ones resolved. `from P import name` counts as importing
    P.name when that is a module, else P; `from <package> import X` for a lazy face name X counts as importing
    lazy[X]. extra_modules: importable modules without a .py file (compiled extensions)."""
    mods = modules(root, package)
    known = set(mods) | set(extra_modules)
    lazy = lazy or {}

    def owner(name: str) -> str | None:
        while name not in known:
            if "." not in name:
                return None
            name = name.rsplit(".", 1)[0]
        return name

    edges = []
    for mod, path in mods.items():
        is_pkg = path.endswith("__init__.py")
        tree = ast.parse((root / path).read_text(), filename=path)
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                for a in node.names:
                    if prefix == package and a.name in lazy:
                        targets.append(f"{package}.{lazy[a.name]}")
                    else:
                        targets.append(f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix)
            for target in targets:
                if target.split(".")[0] != package:
                    continue
                dst = owner(target)
                if dst is not None and dst != mod:
                    edges.append(Edge(mod, dst, path, node.lineno))
    return list(dict.fromkeys(edges))   # `from x import a, b` is one edge


def unit_of(module: str, floors=FLOORS, overrides=UNIT_OVERRIDES) -> tuple[int, str]:
    """(rank = line index in floors, unit name) of a module: the longest unit prefix; `*.__main__` matches any
    entry point module."""
    module = overrides.get(module, module)
    best = None
    for rank, (_, units) in enumerate(floors):
        for unit in units:
            hit = (module.endswith(".__main__") or module == "__main__") if unit == "*.__main__" else \
                (module == unit or module.startswith(unit + "."))
            length = 10**6 if unit == "*.__main__" else len(unit)
            if hit and (best is None or length > best[0]):
                best = (length, rank, unit if unit != "*.__main__" else floors[rank][1][0])
    if best is None:
        raise AssertionError(f"module {module} is on no floor: add its unit to FLOORS")
    return best[1], best[2]


def upward_imports(edges: list[Edge], floors=FLOORS, overrides=UNIT_OVERRIDES) -> list[Edge]:
    """Edges whose importer may not import the target: another unit on the same or a higher line."""
    bad = []
    for e in edges:
        (r_src, u_src), (r_dst, u_dst) = unit_of(e.src, floors, overrides), unit_of(e.dst, floors, overrides)
        if u_src != u_dst and r_dst >= r_src:
            bad.append(e)
    return bad


def circles(edges: list[Edge]) -> list[list[Edge]]:
    """One circle of edges for each strongly connected group of modules that import each other (Tarjan)."""
    graph: dict[str, list[Edge]] = {}
    for e in edges:
        graph.setdefault(e.src, []).append(e)
        graph.setdefault(e.dst, [])
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for e in graph[v]:
            if e.dst not in index:
                visit(e.dst)
                low[v] = min(low[v], low[e.dst])
            elif e.dst in on_stack:
                low[v] = min(low[v], index[e.dst])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    found = []
    for group in groups:   # a shortest path back to the start names one circle's edges
        start = min(group)
        paths = {start: []}
        frontier = [start]
        cycle = None
        while frontier and cycle is None:
            nxt = []
            for v in frontier:
                for e in graph[v]:
                    if e.dst not in group:
                        continue
                    if e.dst == start:
                        cycle = paths[v] + [e]
                        break
                    if e.dst not in paths:
                        paths[e.dst] = paths[v] + [e]
                        nxt.append(e.dst)
                if cycle:
                    break
            frontier = nxt
        found.append(cycle)
    return found


def violations(root: Path, package: str, floors=FLOORS, overrides=UNIT_OVERRIDES, tolerated=frozenset(),
               extra_modules=(), lazy=None) -> list[str]:
    """Messages naming file:line for every upward import and every circle; `tolerated` (importer path, imported
    path) edges are left out of both checks."""
    mods = modules(root, package)
    files = {**mods, **{m: m.replace(".", "/") + " (compiled)" for m in extra_modules}}
    edges = [e for e in import_edges(root, package, extra_modules, lazy) if (e.path, files[e.dst]) not in tolerated]
    out = [f"{e.where()}: {e.src} imports {e.dst} ({files[e.dst]}), which is on the same or a higher floor"
           for e in upward_imports(edges, floors, overrides)]
    for cycle in circles(edges):
        out.append("import circle: " + " -> ".join(f"{e.src} ({e.where()})" for e in cycle) + f" -> {cycle[0].src}")
    return out


def _lazy_names() -> dict[str, str]:
    import aefast
    return dict(aefast._LAZY)


def test_aefast_imports_run_down_the_floors_and_never_in_circles():
    found = violations(REPO, "aefast", extra_modules=("aefast._core",),
                       lazy=_lazy_names())
    assert found == [], "\n".join(found)


def test_every_module_is_on_a_floor():
    for module in modules(REPO, "aefast"):
        unit_of(module)


# --- the checker itself, on a small synthetic package ----------------------------------------------------------------

SYNTHETIC_FLOORS = [(0, ("pkg.low",)), (1, ("pkg.mid", "pkg.side")), (2, ("pkg.top", "*.__main__"))]


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        f = root / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(textwrap.dedent(text))
    return root


CLEAN = {
    "pkg/__init__.py": "",
    "pkg/low.py": "import os\n",
    "pkg/mid/__init__.py": "from ..low import x\n",
    "pkg/mid/a.py": "from . import b\nfrom pkg.low import y\n",
    "pkg/mid/b.py": "import pkg.low\n",
    "pkg/side.py": "from .low import z\n",
    "pkg/top.py": "from .mid import a\nfrom . import side\n",
    "pkg/mid/__main__.py": "from ..top import main\n",
}


def test_checker_passes_a_clean_package(tmp_path):
    assert violations(_package(tmp_path, CLEAN), "pkg", SYNTHETIC_FLOORS, {}) == []


@pytest.mark.parametrize("name, text, words", [
    ("pkg/low.py", "import os\n\ndef f():\n    from .mid import a\n", ["pkg/low.py:4", "pkg.mid.a"]),
    ("pkg/low.py", "import pkg.top\n", ["pkg/low.py:1", "pkg.top"]),
    ("pkg/mid/b.py", "import pkg.low\ntry:\n    from ..side import w\nexcept ImportError:\n    pass\n",
     ["pkg/mid/b.py:3", "pkg.side", "same or a higher floor"]),
    ("pkg/mid/b.py", "import pkg.low\n\ndef g():\n    from pkg.mid import a\n",
     ["import circle", "pkg.mid.a (pkg/mid/a.py:1)", "pkg.mid.b (pkg/mid/b.py:4)"]),
], ids=["relative-upward-in-function", "absolute-upward", "same-floor-other-unit", "circle"])
def test_checker_names_each_new_violation(tmp_path, name, text, words):
    found = violations(_package(tmp_path, {**CLEAN, name: text}), "pkg", SYNTHETIC_FLOORS, {})
    assert any(all(w in message for w in words) for message in found), (words, found)


def test_checker_tolerates_only_the_listed_edge(tmp_path):
    root = _package(tmp_path, {**CLEAN, "pkg/low.py": "import pkg.top\nimport pkg.side\n"})
    found = violations(root, "pkg", SYNTHETIC_FLOORS, {}, tolerated={("pkg/low.py", "pkg/top.py")})
    assert found and all("pkg/low.py:2" in m and "pkg/low.py:1" not in m for m in found), found

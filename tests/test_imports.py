"""The import graph of vsslkit/: no cycles, and arrows only downward (docs/architecture.md).

    data, plans -> tasks -> train / eval -> viz -> classroom, experiments -> commands, cli
    models: imported by anyone, imports nothing of ours but models

The graph is read from the source with `ast`, every `import` statement wherever it stands
(inside functions too), so an import moved into a function to dodge a cycle at runtime is still
an arrow here. Edges go to the module named (`from vsslkit.viz import plots` -> vsslkit.viz.plots;
`from vsslkit.models import build_backbone` -> the package vsslkit.models). Python's implicit
"a submodule import runs its package's __init__" is not an edge: a package that imports its own
children would otherwise always be a cycle. Same-layer arrows between packages (data <-> plans,
train <-> eval) are allowed; the cycle check keeps them one-way.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

import vsslkit

ROOT = Path(vsslkit.__file__).resolve().parent

# Top-level part of a module name (vsslkit.<part>...) -> its layer; lower layers are imported by higher.
LAYERS: dict[str, int] = {
    "errors": -1, "atomic": -1,  # leaves (standard library only) that every layer may use
    "models": 0,
    "data": 1, "plans": 1,
    "tasks": 2,
    "train": 3, "eval": 3,
    "viz": 4,
    "classroom": 5, "experiments": 5,
    "commands": 6, "cli": 6, "__main__": 6,
}
TOP = "commands", "cli", "__main__"  # the entry points: nothing of the library imports them


def module_graph(root: Path, package: str = "vsslkit") -> dict[str, set[str]]:
    """{module: modules of `package` it imports} for every .py file under `root` (the package dir)."""
    files: dict[str, tuple[Path, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        files[".".join(parts[:-1] if is_package else parts)] = (path, is_package)

    def known(name: str) -> str | None:  # the longest prefix of `name` that is a module of ours
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in files.items():
        here = module if is_package else module.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names if a.name.split(".")[0] == package}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: `from ..x import y` inside package `here`
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != package:
                    continue
                for alias in node.names:  # `from pkg import submodule` is an arrow to the submodule
                    name = f"{source}.{alias.name}"
                    targets.add(name if name in files else known(source))
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The shortest cycle through each module that is on one, as paths a -> ... -> a (each cycle once)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan; the graphs here are small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles: set[tuple[str, ...]] = set()
    for component in components:
        if len(component) == 1 and not component & graph.get(min(component), set()):
            continue
        for start in component:
            cycle = _shortest_cycle(graph, start, component)
            turn = cycle.index(min(cycle))  # the same cycle found from each of its modules: keep one
            cycles.add(tuple(cycle[turn:] + cycle[:turn]))
    return sorted([*c, c[0]] for c in cycles)


def _shortest_cycle(graph: dict[str, set[str]], start: str, component: set[str]) -> list[str]:
    """Breadth-first from `start` back to it inside its component: [start, ..., last before start]."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        if start in graph.get(v, ()):
            path = [v]
            while path[-1] != start:
                path.append(previous[path[-1]])
            return path[::-1]
        for w in sorted(graph.get(v, set()) & component):
            if w not in previous and w != start:
                previous[w] = v
                queue.append(w)
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def layer(module: str) -> int:
    """The layer of a module of ours; -1 for the package root (it only holds `__version__`)."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    if parts[1] not in LAYERS:
        raise KeyError(f"{module}: not in any layer; add vsslkit.{parts[1]} to LAYERS in tests/test_imports.py "
                       "(and to the arrows in docs/architecture.md)")
    return LAYERS[parts[1]]


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module in a higher layer than the importer's, as 'a -> b (layer i -> j)'.
    A module outside every layer raises KeyError, even one that imports nothing."""
    for module in graph:
        layer(module)
    return sorted(f"{a} -> {b} (layer {layer(a)} -> {layer(b)})"
                  for a, targets in graph.items() for b in targets if layer(b) > layer(a))


def is_part_of(module: str, area: str) -> bool:
    return module == f"vsslkit.{area}" or module.startswith(f"vsslkit.{area}.")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return module_graph(ROOT)


# --- the checkers catch what they claim (on a made-up package) --------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_graph_sees_every_kind_of_import(tmp_path):
    pkg = write(tmp_path / "vsslkit", {
        "__init__.py": "",
        "a/__init__.py": "from vsslkit.a.b import thing\n",
        "a/b.py": "from . import c\nfrom .c import f\n\ndef later():\n    from ..d import e\n    import vsslkit.d.e as z\n",
        "a/c.py": "import os\nimport vsslkit\n\ndef f():\n    from vsslkit.a import b\n",
        "d/__init__.py": "",
        "d/e.py": "from vsslkit.d.e import nothing  # itself\nfrom vsslkit.a.b import later\n",
    })
    assert module_graph(pkg) == {
        "vsslkit": set(),
        "vsslkit.a": {"vsslkit.a.b"},
        "vsslkit.a.b": {"vsslkit.a.c", "vsslkit.d.e"},
        "vsslkit.a.c": {"vsslkit", "vsslkit.a.b"},
        "vsslkit.d": set(),
        "vsslkit.d.e": {"vsslkit.a.b"},
    }


def test_cycles_are_reported_with_their_path():
    graph = {"x": {"y"}, "y": {"z", "w"}, "z": {"x"}, "w": set(), "s": {"s"}, "p": {"q"}, "q": {"w"}}
    assert find_cycles(graph) == [["s", "s"], ["x", "y", "z", "x"]]
    # a hub on two cycles (backbones <-> c3d, backbones <-> resnet50): both are named
    hub = {"b": {"c", "r", "n"}, "c": {"b"}, "r": {"b"}, "n": set()}
    assert find_cycles(hub) == [["b", "c", "b"], ["b", "r", "b"]]
    assert find_cycles({"x": {"y"}, "y": set()}) == []


def test_upward_arrows_are_named():
    graph = {"vsslkit.models.c3d": {"vsslkit.data.video", "vsslkit.models.norms"},
             "vsslkit.eval.cam": {"vsslkit.viz.plots", "vsslkit.tasks", "vsslkit"},
             "vsslkit.data.clips": {"vsslkit.plans"}, "vsslkit.train.loop": {"vsslkit.eval.metrics"}}
    assert upward_arrows(graph) == ["vsslkit.eval.cam -> vsslkit.viz.plots (layer 3 -> 4)",
                                    "vsslkit.models.c3d -> vsslkit.data.video (layer 0 -> 1)"]
    with pytest.raises(KeyError, match="vsslkit.newthing: not in any layer"):
        upward_arrows({"vsslkit.newthing": set()})


# --- vsslkit itself ---------------------------------------------------------------------------


def test_the_graph_is_the_real_one(graph):
    assert "vsslkit.models.c3d" in graph["vsslkit.models.backbones"]
    assert "vsslkit.eval.pretext" in graph["vsslkit.commands.evaluate"]  # an import inside a function


def test_no_import_cycle_inside_vsslkit(graph):
    cycles = [" -> ".join(c) for c in find_cycles(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_every_module_has_a_layer_and_arrows_point_down(graph):
    arrows = upward_arrows(graph)
    assert not arrows, "imports against the layering:\n" + "\n".join(arrows)


def test_models_import_nothing_of_ours_but_models(graph):
    bad = sorted(f"{a} -> {b}" for a, targets in graph.items() if is_part_of(a, "models")
                 for b in targets if b != "vsslkit" and not is_part_of(b, "models") and layer(b) >= 0)
    assert not bad, "\n".join(bad)


def test_the_library_never_imports_a_command(graph):
    bad = sorted(f"{a} -> {b}" for a, targets in graph.items() if not any(is_part_of(a, t) for t in TOP)
                 for b in targets if any(is_part_of(b, t) for t in TOP))
    assert not bad, "\n".join(bad)


def test_no_command_imports_viz(graph):
    """Commands print and write files; ipywidgets apps and their helpers are the notebooks' side.
    (Direct imports: `quickstart` reaches viz.plots through experiments, whose HTML report is
    made of plotly figures, by design; `neighbours --html` writes film strips with viz.neighbours'
    page function, the one command that draws.)"""
    drawing = {("vsslkit.commands.embed", "vsslkit.viz.neighbours")}
    bad = sorted(f"{a} -> {b}" for a, targets in graph.items() if is_part_of(a, "commands")
                 for b in targets if is_part_of(b, "viz") and (a, b) not in drawing)
    assert not bad, "\n".join(bad)

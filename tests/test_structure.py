"""The dependency direction, checked over the import graph (read with `ast`, nothing is imported).

Layers, lowest first: the base (`workbench.errors`, `workbench.enums`, `workbench.validation`, and
`workbench.frame_comb`, a measure of audio that both the verdicts and the teaching codec's checks use), importable by
all < `workbench.runtime` < `workbench.data` < `workbench.analysis` < `widgets`. `workbench.toy` (the teaching
model's assets, synthesiser, readers and recipe) sits beside runtime: it may import runtime and the base, never
data, analysis or widgets. Every module imports its own code at the top: a function-level import of the project
is allowed only where `LAZY` below says why. The graph counts module-level and function-level imports alike,
package `__init__` re-exports included, and must have no cycle.

Signatures: no public function, method or constructor of `workbench` or `widgets` takes more than 8 parameters
(a ninth means a config object); `WIDE` names the exceptions and why; `WIDE_TO_FIX` (the ones still to fix) is empty.
"""
from __future__ import annotations

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("workbench", "widgets")
HEAVY = {"torch", "transformers", "nnsight"}  # what a torch-free guard keeps out

BASE = {"workbench.errors", "workbench.enums", "workbench.validation", "workbench.frame_comb"}
# prefix -> rank; a module may import its own rank or lower (toy shares runtime's rank, but not data's)
RANKS = {"workbench.runtime": 1, "workbench.toy": 1, "workbench.data": 2, "workbench.analysis": 3,
         # the two command-only packages (`python -m ...`): they run the analysis
         "workbench.evaluation": 3, "workbench.features": 3, "widgets": 4}
# command entry points: the top of the graph, they import whatever their command runs
COMMANDS = {
    "workbench.__main__",
    # `python -m workbench.toy evaluate` stays the teaching model's command while its evaluation protocol
    # lives beside the analysis it uses (workbench.analysis.teaching): the command module is the one place in
    # toy/ that reaches up; a command registry would add a layer of indirection for three subcommands.
    "workbench.toy.__main__",
}

# (importer, imported) -> why the import stays inside a function
TORCH_FREE = "torch-free guard: the importer loads without torch, the imported module needs it"
LAZY = {
    # widgets import without torch (tests/test_widgets.py::test_widgets_do_not_import_torch), and so does much of
    # the analysis they show (verdict tables, evaluation summaries, projections of stored arrays): the modules
    # that need torch load when a function first needs them. Checked below: each importer here loads without
    # torch and each imported module needs it.
    **{pair: TORCH_FREE for pair in (
        ("widgets.app", "workbench.analysis.probes"),
        ("widgets.backend", "workbench.analysis.evaluation.verdicts"),
        ("widgets.backend", "workbench.analysis.patching"),
        ("widgets.backend", "workbench.analysis.step_traces"),
        ("widgets.sweep_view", "workbench.analysis.probes"),
        ("workbench.analysis.evaluation.grid", "workbench.runtime.edits"),
        ("workbench.analysis.evaluation.grid", "workbench.runtime.inputs"),
        ("workbench.analysis.evaluation.grid", "workbench.runtime.steering"),
        ("workbench.analysis.evaluation.methods", "workbench.runtime.steering"),
        ("workbench.analysis.evaluation.presets", "workbench.analysis.probes"),
        ("workbench.analysis.evaluation.presets", "workbench.analysis.solvers"),
        ("workbench.analysis.evaluation.report", "workbench.analysis.evaluation.verdicts"),
        ("workbench.analysis.evaluation.report", "workbench.analysis.probes"),
        ("workbench.analysis.projections", "workbench.analysis.probes"),
        ("workbench.analysis.strength", "workbench.runtime.generation"),
        ("workbench.analysis.strength", "workbench.runtime.edits"),
        ("workbench.analysis.teaching.concepts", "workbench.analysis.baselines"),
        ("workbench.analysis.teaching.concepts", "workbench.analysis.probes"),
        ("workbench.analysis.teaching.concepts", "workbench.data.collect"),
        ("workbench.analysis.teaching.evaluate", "workbench.analysis.evaluation.verdicts"),
        ("workbench.analysis.teaching.evaluate", "workbench.analysis.probes"),
        # a Ray worker's module loads on the driver without torch; the model loads on the worker
        ("workbench.data.ray_pool", "workbench.runtime.model"),
        # the judge (numpy) fits on a codec's round trips only when training passes one
        ("workbench.toy.judge", "workbench.toy.training.codec_training"),
    )},
    # the teaching model's genre judge is optional to a score (absent weights or an old judge: no reading)
    ("workbench.analysis.scores", "workbench.toy.judge"): "optional: inside try/except, a missing judge is None",
}
# edges left out of the cycle check, each a known circle still to break (see LAZY); none is left
CYCLE_TO_BREAK: set[tuple[str, str]] = set()
# (`workbench/__init__.py`'s `__getattr__` imports its names by string through importlib: no edge here.)


def _module_files() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


MODULES = _module_files()


def _face_names() -> dict[str, str]:
    """A name of the lazy face (`import workbench as wb; wb.generate`) -> the module defining it."""
    tree = ast.parse((ROOT / "workbench" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_NAMES":
            return {f"workbench.{name}": module for name, module in ast.literal_eval(node.value).items()}
    raise AssertionError("workbench/__init__.py has no _NAMES table")


FACE = _face_names()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (a name imported from a module is the module)."""
    if name in FACE:
        return FACE[name]
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


Edge = collections.namedtuple("Edge", "importer imported line in_function")


def _edges_of(module: str, path: Path, is_package: bool) -> list[Edge]:
    edges = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")[: len(module.split(".")) - child.level + is_package]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module
                # `from pkg import submodule` depends on the submodule; a name from the package's `__init__`
                # (a re-export) on the package
                names = [f"{source}.{alias.name}" for alias in child.names]
                if any(name not in MODULES for name in names):
                    names.append(source)
            else:
                visit(child, nested)
                continue
            for name in names:
                if name.split(".")[0] in PACKAGES:
                    target = _resolve(name)
                    if target and target != module:
                        edges.append(Edge(module, target, child.lineno, in_function))
    visit(ast.parse(path.read_text()), False)
    return sorted(set(edges))


EDGES = [edge for module, (path, is_package) in MODULES.items() for edge in _edges_of(module, path, is_package)]


def _rank(module: str) -> int | None:
    if module in BASE or module == "workbench":
        return 0
    for prefix, rank in RANKS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return None


def _show(edges) -> str:
    return "\n".join(f"  {e.importer} -> {e.imported}  ({MODULES[e.importer][0].relative_to(ROOT)}:{e.line}"
                     f"{', in a function' if e.in_function else ''})" for e in edges)


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = collections.defaultdict(set)
    for edge in EDGES:
        if (edge.importer, edge.imported) not in CYCLE_TO_BREAK:
            graph[edge.importer].add(edge.imported)
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(MODULES):
        if node not in index:
            connect(node)
    return components


def test_the_cycle_still_to_break_is_there():
    """CYCLE_TO_BREAK names only edges that exist (remove an entry once its circle is broken)."""
    edges = {(e.importer, e.imported) for e in EDGES}
    assert CYCLE_TO_BREAK <= edges, sorted(CYCLE_TO_BREAK - edges)


def test_the_graph_is_read():
    """The reader sees the imports it must see (a broken reader would pass every other test)."""
    assert len(MODULES) > 100 and len(EDGES) > 200
    pairs = {(e.importer, e.imported) for e in EDGES}
    assert ("workbench.analysis.probes", "workbench.analysis.saving") in pairs
    # `from workbench.analysis.evaluation import summaries` is an edge to the submodule
    assert ("widgets.evaluation_view", "workbench.analysis.evaluation.summaries") in pairs
    # `from workbench import generate` resolves through the lazy face to the module that defines it
    assert FACE["workbench.generate"] == "workbench.runtime.generation"
    assert any(e.in_function for e in EDGES)  # the allow-listed guards below


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if _rank(m) is None and m not in COMMANDS)
    assert not unplaced, f"place these modules in a layer (tests/test_structure.py RANKS): {unplaced}"


def test_no_import_cycle():
    cycles = _cycles()
    lines = []
    for component in cycles:
        members = set(component)
        lines.append(" <-> ".join(component))
        lines.append(_show(e for e in EDGES if e.importer in members and e.imported in members))
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(lines)


def test_no_module_imports_a_higher_layer():
    upward = [e for e in EDGES if e.importer not in COMMANDS
              and _rank(e.importer) is not None and _rank(e.imported) is not None
              and _rank(e.imported) > _rank(e.importer)]
    # toy beside runtime: same rank as runtime, but toy never reaches data, analysis or widgets
    upward += [e for e in EDGES if e.importer.startswith("workbench.toy") and e.importer not in COMMANDS
               and _rank(e.imported) > 1]
    upward = sorted(set(upward))
    assert not upward, f"{len(upward)} import(s) of a higher layer:\n" + _show(upward)


def test_no_function_level_imports():
    lazy = sorted(e for e in EDGES if e.in_function and (e.importer, e.imported) not in LAZY)
    assert not lazy, (f"{len(lazy)} function-level import(s) of the project: move them to the top of the module "
                      "(or say in LAZY why one must stay):\n" + _show(lazy))


def _heavy_closure() -> dict[str, bool]:
    """Whether importing a module (top-level imports only, parents included) loads torch or its kin."""
    needs = {}
    top = collections.defaultdict(set)
    for edge in EDGES:
        if not edge.in_function:
            top[edge.importer].add(edge.imported)

    def heavy(module, seen):
        if module in needs:
            return needs[module]
        seen.add(module)
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        result = bool(_top_level_heavy(module)) or any(
            heavy(m, seen) for m in (*top[module], *parents) if m in MODULES and m not in seen)
        needs[module] = result
        return result

    def _top_level_heavy(module):
        path = MODULES[module][0]
        found = set()
        for node in ast.parse(path.read_text()).body:
            for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
                if isinstance(sub, ast.Import):
                    found |= {a.name.split(".")[0] for a in sub.names}
                elif isinstance(sub, ast.ImportFrom) and not sub.level and sub.module:
                    found.add(sub.module.split(".")[0])
        return found & HEAVY

    return {module: heavy(module, set()) for module in MODULES}


def test_the_lazy_allow_list_is_current():
    """Each allowed function-level import exists, and a torch-free guard really keeps torch out."""
    function_level = {(e.importer, e.imported) for e in EDGES if e.in_function}
    stale = sorted(pair for pair in LAZY if pair not in function_level)
    assert not stale, f"LAZY lists imports that are gone or now at the top: remove them: {stale}"
    heavy = _heavy_closure()
    needless = sorted((importer, imported) for (importer, imported), why in LAZY.items()
                      if why == TORCH_FREE and (heavy[importer] or not heavy[imported]))
    assert not needless, f"these guards keep nothing out (move the import to the top): {needless}"


# -- signatures: a ninth parameter means a config object -----------------------------------------------------
MAX_PARAMETERS = 8
# public functions allowed more, each with why; a stale entry (gone, or back under the limit) fails below
WIDE = {
    # its keyword shortcuts (duration_s=, seeds=, ...) build its GenerationSettings: the README's one-liners
    "workbench.runtime.generation.generate": "keyword shortcuts of GenerationSettings",
}
# still to fix (issue 32 emptied it): a new wide signature gets a config object or a GenerationSettings, not an entry
WIDE_TO_FIX: dict[str, str] = {}


def _parameter_counts() -> dict[str, tuple[int, str]]:
    """{qualified name: (parameters, "path:line")} of every public function, method and constructor.

    Public: a name not starting with "_" (``__init__`` counted) in a module or a public class, at any depth of
    module- or class-level statements (not inside functions). Counted: positional, keyword and keyword-only
    parameters; not ``self``/``cls``, ``*args`` or ``**kwargs``. A dataclass's generated ``__init__`` is not in
    the source: a frozen dataclass is what a config object is.
    """
    counts = {}

    def visit(node, module: str, prefix: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                if not child.name.startswith("_"):
                    visit(child, module, f"{prefix}{child.name}.", True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if child.name.startswith("_") and child.name != "__init__":
                    continue
                args = child.args
                positional = [*args.posonlyargs, *args.args]
                n = len(positional) + len(args.kwonlyargs)
                if in_class and positional and positional[0].arg in ("self", "cls"):
                    n -= 1
                path = MODULES[module][0].relative_to(ROOT)
                counts[f"{module}.{prefix}{child.name}"] = (n, f"{path}:{child.lineno}")
            elif not isinstance(child, ast.Lambda):
                visit(child, module, prefix, in_class)  # if/try blocks at module or class level

    for module, (path, _) in MODULES.items():
        visit(ast.parse(path.read_text()), module, "", False)
    return counts


PARAMETERS = _parameter_counts()


def test_the_parameter_count_is_read():
    """The counter sees what it must (a broken counter would pass the test below)."""
    assert PARAMETERS["workbench.runtime.generation.generate"][0] > MAX_PARAMETERS
    assert PARAMETERS["workbench.runtime.settings.GenerationSettings.replace"][0] == 0  # self and **changes
    assert "workbench.data.store.ActivationStore.create" in PARAMETERS  # a classmethod: cls not counted
    assert not any(name.rsplit(".", 1)[-1].startswith("_") and not name.endswith("__init__") for name in PARAMETERS)


def test_no_public_function_takes_more_than_eight_parameters():
    wide = sorted((n, name, where) for name, (n, where) in PARAMETERS.items()
                  if n > MAX_PARAMETERS and name not in WIDE and name not in WIDE_TO_FIX)
    assert not wide, (f"{len(wide)} public function(s) take more than {MAX_PARAMETERS} parameters: a ninth means a "
                      "config object (a frozen dataclass checked in __post_init__), or a GenerationSettings for "
                      "generation:\n" + "\n".join(f"  {name}: {n} parameters ({where})" for n, name, where in wide))


def test_the_wide_allow_lists_are_current():
    stale = sorted(name for name in (*WIDE, *WIDE_TO_FIX)
                   if name not in PARAMETERS or PARAMETERS[name][0] <= MAX_PARAMETERS)
    assert not stale, (f"these are gone or now take <= {MAX_PARAMETERS} parameters: remove them from WIDE or "
                       f"WIDE_TO_FIX: {stale}")

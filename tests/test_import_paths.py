"""One import path per module: the wave-one addresses are gone from the package and from every file.

Where each old address lives now is in CHANGELOG.md (the one file, with .venv, that may still name them).
"""
import importlib
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import workbench

ROOT = Path(__file__).resolve().parents[1]

# old address -> where the module lives now
MOVED = {
    "workbench.model": "workbench.runtime.model",
    "workbench.configs": "workbench.runtime.configs",
    "workbench.capture": "workbench.runtime.capture",
    "workbench.steering": "workbench.runtime.steering",
    "workbench.hooks": "workbench.runtime.hooks",
    "workbench.generation": "workbench.runtime.generation",
    "workbench.teacher_forcing": "workbench.runtime.teacher_forcing",
    "workbench.tracing": "workbench.runtime.tracing",
    "workbench.clip": "workbench.runtime.clip",
    "workbench.datasets": "workbench.data.datasets",
    "workbench.store": "workbench.data.store",
    "workbench.collect": "workbench.data.collect",
    "workbench.probes": "workbench.analysis.probes",
    "workbench.directions": "workbench.analysis.directions",
    "workbench.projections": "workbench.analysis.projections",
    "workbench.scores": "workbench.analysis.scores",
    "workbench.recipes": "workbench.analysis.evaluation.presets",
    "workbench.analysis.evaluation.recipes": "workbench.analysis.evaluation.presets",
    # wave three: the teaching model's evaluation protocol moved beside the analysis it uses
    "workbench.toy.evaluate": "workbench.analysis.teaching.evaluate",
    "workbench.toy.concepts": "workbench.analysis.teaching.concepts",
}
# packages that are commands only (`python -m ...`): importable, with nothing in them to import
COMMANDS = {"workbench.evaluation": "workbench.analysis.evaluation",
            "workbench.features": "workbench.analysis.features"}

_WAVE_ONE = "|".join(name.split(".", 1)[1] for name in MOVED if name.count(".") == 1)
_COMMAND = "evaluation|features"
OLD_PATH_PATTERNS = [
    re.compile(rf"(?<![\w.])workbench\.(?:{_WAVE_ONE})\b"),                       # workbench.probes
    re.compile(rf"\bfrom workbench import [^\n]*\b(?:{_WAVE_ONE}|{_COMMAND})\b"),  # from workbench import scores
    re.compile(rf"\b(?:from|import)\s+workbench\.(?:{_COMMAND})\b"),              # from workbench.features import
    re.compile(rf"(?<![\w.])workbench\.(?:{_COMMAND})\.[A-Za-z_]"),              # workbench.evaluation.run_grid
    re.compile(rf"`workbench\.(?:{_COMMAND})`"),                                  # prose: `workbench.features`
    re.compile(r"\banalysis\.evaluation\.recipes\b"),
    re.compile(r"\bworkbench\.toy\.(?:evaluate|concepts)\b"),
    re.compile(r"\bfrom workbench\.toy import [^\n]*\b(?:evaluate|concepts)\b"),
]
SCANNED_SUFFIXES = {".py", ".ipynb", ".md", ".toml", ".cfg", ".yml", ".yaml", ".sh"}
SKIPPED_DIRS = {".venv", ".git", "node_modules", "build", "dist", "site", "test-artifacts", ".pytest_cache",
                "wheelhouse", ".ipynb_checkpoints", "__pycache__"}
SKIPPED_FILES = {ROOT / "CHANGELOG.md", Path(__file__).resolve()}


def _scanned_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if any(p in SKIPPED_DIRS or p.endswith(".egg-info") for p in parts[:-1]) or path in SKIPPED_FILES:
            continue
        if path.is_file() and (path.suffix in SCANNED_SUFFIXES or path.name == "Makefile"):
            files.append(path)
    return files


def test_no_file_uses_an_old_module_path():
    found = []
    for path in _scanned_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if any(p.search(line) for p in OLD_PATH_PATTERNS):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:140]}")
    assert not found, "old module paths (CHANGELOG.md says where each lives now):\n" + "\n".join(found)


def test_the_scan_sees_the_old_paths():
    """The patterns catch each way an old path is written, and leave the commands and format tags alone."""
    caught = ["import workbench.probes", "from workbench.collect import collect", "from workbench import scores",
              "from workbench.features import FrameStream", "a `workbench.features.FeatureLabels`",
              "`workbench.evaluation.frontier_auc`", "`workbench.evaluation` (the grids)",
              "from workbench.analysis.evaluation.recipes import paper_2506_10225", "import workbench.recipes as r"]
    allowed = ["python -m workbench.evaluation report --json PATH", '"-m", "workbench.features", "report"',
               '"format": "workbench.evaluation/2"', "from workbench.analysis.probes import sweep",
               "from workbench import load_model, Clip", "import workbench.runtime.model"]
    assert [s for s in caught if not any(p.search(s) for p in OLD_PATH_PATTERNS)] == []
    assert [s for s in allowed if any(p.search(s) for p in OLD_PATH_PATTERNS)] == []


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_does_not_import(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)
    assert not hasattr(workbench, old.rsplit(".", 1)[1]), f"`workbench.{old.rsplit('.', 1)[1]}` still answers"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_package_exports_nothing(command):
    module = importlib.import_module(command)
    public = sorted(n for n in vars(module) if not n.startswith("_"))
    assert public == [], f"{command} is a command (`python -m {command}`); import {COMMANDS[command]} instead"
    assert (Path(module.__file__).parent / "__main__.py").exists()


def _walked(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    return [package] + [i.name for i in pkgutil.walk_packages(pkg.__path__, prefix=package + ".")
                        if not i.name.endswith(".__main__")]


def test_no_module_is_reachable_under_two_names():
    names = _walked("workbench") + _walked("widgets")
    for name in names + sorted(MOVED):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            pass
    by_identity: dict[int, list[str]] = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("workbench", "widgets") and module is not None:
            by_identity.setdefault(id(module), []).append(name)
    aliased = sorted(sorted(n) for n in by_identity.values() if len(n) > 1)
    assert aliased == [], f"one module object under several names: {aliased}"
    # a module whose public face is another module's whole face is an alias too
    faces: dict[frozenset, list[str]] = {}
    for name in names:
        face = getattr(sys.modules[name], "__all__", None)
        if face:
            faces.setdefault(frozenset(face), []).append(name)
    assert sorted(n for n in faces.values() if len(n) > 1) == []

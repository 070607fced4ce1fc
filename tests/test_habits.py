"""Habits of the codebase: docstring examples run, the linter is clean, the package face is torch-free."""
import doctest
import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module_name", _modules("workbench") + _modules("widgets"))
def test_docstring_examples_run(module_name, one_torch_thread):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module_name} failed (run it with -s to see)"


def test_the_core_has_docstring_examples():
    """Most core modules carry a runnable example (a module without one is easy to miss)."""
    finder = doctest.DocTestFinder()
    core = [m for m in _modules("workbench") if not m.startswith("workbench.toy")]
    with_examples = [m for m in core if any(t.examples for t in finder.find(importlib.import_module(m)))]
    assert len(with_examples) >= 0.8 * len(core), sorted(set(core) - set(with_examples))


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed: `pip install -e '.[dev]'` (make setup) installs it")
    run = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:]


def test_package_face_is_torch_free():
    code = ("import sys, workbench, workbench.errors, workbench.enums, workbench.toy;"
            "from workbench import WorkbenchError;"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_readme_imports_resolve():
    """Every `from workbench... import ...` line the README shows works."""
    import re
    lines = re.findall(r"^\s*(from (?:workbench|widgets)[\w.]* import [\w, ]+)", (ROOT / "README.md").read_text(), re.M)
    assert lines
    for line in lines:
        exec(line, {})

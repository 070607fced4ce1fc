"""The front door: the README (short, its notebook list, its example), CITATION.cff, and the documentation site's
sources (an API page per module, a page per error class, the notebooks, no dated result files). `make docs`
builds the site itself with warnings as errors (`make test` runs it after the tests)."""
from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

import workbench.errors

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
NOTEBOOK_STEMS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
COMMAND_ONLY = {"workbench.evaluation", "workbench.features"}  # `python -m ...`: nothing in them to document


def _code_blocks(markdown: str, language: str = "python") -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, flags=re.S | re.M)


def _mkdocs_config() -> dict:
    class _Loader(yaml.SafeLoader):  # mkdocs.yml may hold !!python/name tags; none are needed to read the nav
        pass
    _Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)


def _nav_paths(nav) -> list[str]:
    out = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        out += _nav_paths(value) if isinstance(value, list) else [value]
    return out


def test_readme_is_a_front_door():
    lines = README.count("\n")
    assert lines < 200, f"README.md has {lines} lines: move detail into the docs site (docs/)"
    assert "make lab" in README and "make test" in README and "CITATION.cff" in README
    image = re.search(r"!\[[^]]*\]\(([^)]+)\)", README)
    assert image and (ROOT / image.group(1)).is_file(), "the README's screenshot is missing"


def test_readme_lists_every_notebook():
    listed = re.findall(r"^\| `(\d\d_\w+)` \|", README, flags=re.M)
    assert listed == NOTEBOOK_STEMS, f"README's notebook table {listed} != notebooks/*.ipynb {NOTEBOOK_STEMS}"
    docs_listed = re.findall(r"^\| \[(\d\d_\w+)\]\(notebooks/\1\.ipynb\) \|", (ROOT / "docs/notebooks.md").read_text(),
                             flags=re.M)
    assert docs_listed == NOTEBOOK_STEMS, f"docs/notebooks.md lists {docs_listed}"
    nav = _nav_paths(_mkdocs_config()["nav"])
    assert [p for p in nav if p.endswith(".ipynb")] == [f"notebooks/{s}.ipynb" for s in NOTEBOOK_STEMS]


def test_citation_cff():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "license", "references"):
        assert cff.get(key), f"CITATION.cff needs {key!r}"
    assert cff["authors"] == [{"name": "musicgen-workbench developers"}]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cff["license"] == project["license"] and cff["version"] == project["version"]
    paper = cff["references"][0]
    assert paper["title"] == "Genre Controlled Music Generation via Activation Steering"
    assert "arXiv:2506.10225" in {i["value"] for i in paper["identifiers"]} and len(paper["authors"]) == 8


def _documented_modules() -> list[str]:
    names = []
    for path in sorted([*(ROOT / "workbench").rglob("*.py"), *(ROOT / "widgets").rglob("*.py")]):
        if path.name == "__main__.py" or (path.name.startswith("_") and path.name != "__init__.py"):
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if name not in COMMAND_ONLY:
            names.append(name)
    return names


def test_every_module_has_an_api_page_in_the_nav():
    modules = _documented_modules()
    pages = {p.stem for p in (ROOT / "docs/api").glob("*.md")} - {"index"}
    assert sorted(pages) == sorted(modules), (f"docs/api/ out of step with the modules: add "
                                              f"{sorted(set(modules) - pages)}, remove {sorted(pages - set(modules))}")
    for name in modules:
        assert (ROOT / f"docs/api/{name}.md").read_text() == f"# `{name}`\n\n::: {name}\n"
    nav = set(_nav_paths(_mkdocs_config()["nav"]))
    assert {f"api/{m}.md" for m in modules} <= nav, "list each API page in mkdocs.yml's nav"


def test_every_error_class_has_a_page():
    classes = [name for name, obj in inspect.getmembers(workbench.errors, inspect.isclass)
               if issubclass(obj, Exception) and obj.__module__ == "workbench.errors"]
    assert len(classes) > 10
    index = (ROOT / "docs/errors/index.md").read_text()
    nav = set(_nav_paths(_mkdocs_config()["nav"]))
    for name in classes:
        page = (ROOT / f"docs/errors/{name}.md").read_text()
        assert "## Usual cause" in page and "## Fix" in page, name
        assert f"]({name}.md)" in index and f"errors/{name}.md" in nav, name


def test_docs_holds_no_dated_or_per_trial_results():
    """One current file per report (docs/figures/NAME.json, rewritten by its command); older runs live in git."""
    stale = [str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.json")
             if re.search(r"\d{4}-\d{2}-\d{2}|trial", p.name)]
    assert stale == []


def _imports(code: str) -> list[str]:
    """The import lines of a code block (some blocks are sketches, not whole programs)."""
    lines = [line.split("  #")[0].strip() for line in code.splitlines()]
    return [ast.unparse(ast.parse(line)) for line in lines if re.match(r"(from \S+ )?import \S", line)]


def test_every_import_in_the_readme_and_docs_resolves():
    """Code in the README and the docs pages names modules and objects that exist (a renamed module fails here)."""
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    statements = sorted({s for path in sources for block in _code_blocks(path.read_text()) for s in _imports(block)})
    assert len(statements) > 10
    script = "\n".join(statements)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_readme_example_runs(tmp_path):
    """The README's example, as written, on the teaching model (about a minute on 2 loaded cores)."""
    example = next(b for b in _code_blocks(README) if "import workbench as wb" in b)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "steered.wav").stat().st_size > 1000

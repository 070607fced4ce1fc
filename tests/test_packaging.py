"""environment.yml and pyproject.toml name the same dependencies; the README gives the two commands."""
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    docs_tools = [r for r in project["optional-dependencies"]["dev"] if _name(r).startswith("mkdocs")]
    # conda users get the ray extra and the documentation tools too
    wanted = project["dependencies"] + project["optional-dependencies"]["ray"] + docs_tools
    assert len(docs_tools) == 4, "the dev extra names mkdocs, mkdocs-material, mkdocstrings[python], mkdocs-jupyter"
    assert sorted(pip_section) == sorted(wanted), "keep environment.yml's pip list == pyproject (+ ray, the docs tools)"
    assert {_name(r) for r in pip_section} == {_name(r) for r in wanted}


def test_make_setup_installs_the_ray_extra():
    """CI (make test -> make setup) runs the Ray tests, so a fresh clone gets the extra."""
    assert "ray" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert re.search(r'-e "\.\[[a-z,]*\bray\b[a-z,]*\]"', (ROOT / "Makefile").read_text())


def test_readme_and_ci_use_make_test():
    assert "make test" in (ROOT / "README.md").read_text() and "make lab" in (ROOT / "README.md").read_text()
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_constraints_pin_cpu_torch():
    assert "torch==" in (ROOT / "constraints.txt").read_text()


def test_package_data_covers_every_shipped_file():
    """Each data file in the packages (weights, fitted parameters, the model card) goes into the wheel."""
    import fnmatch
    import subprocess

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    tracked = subprocess.run(["git", "ls-files", "workbench", "widgets", "benchmarks"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    missing = []
    for name in (n for n in tracked if not n.endswith(".py")):
        package_dir = Path(name).parent
        while package_dir != Path(".") and ".".join(package_dir.parts) not in globs:
            package_dir = package_dir.parent
        patterns = globs.get(".".join(package_dir.parts), [])
        inside = Path(name).relative_to(package_dir).as_posix() if patterns else name
        if not any(fnmatch.fnmatch(inside, p) for p in patterns):
            missing.append(name)
    assert missing == [], f"add these to [tool.setuptools.package-data] in pyproject.toml: {missing}"

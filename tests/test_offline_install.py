"""The classroom install: `make wheelhouse` prepares a folder of wheels, and `make setup` (what `make lab` runs
first) installs from it alone into a fresh venv, with no network.

The slow test builds the folder (network: PyPI, and the local torch wheel or PyTorch's CPU index), then runs
`make setup` in a fresh `python -m venv` inside a network namespace of its own where `unshare --net` works
(pip's config files off either way, so only the folder can supply a wheel), imports `workbench` and `widgets`
there and generates a tiny clip. Times and sizes go to test-artifacts/offline-install.json.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

needs_make = pytest.mark.skipif(os.name != "posix" or shutil.which("make") is None, reason="needs POSIX and make")


def _make_env(pip_settings: bool = True, **extra: str) -> dict:
    """os.environ without an outer make's flags and variables (`make test` runs us), and pip's PIP_* if asked."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "VENV", "WHEELHOUSE"}
           and (pip_settings or not k.startswith("PIP_"))}
    env.update(extra)
    return env


def _make(*args: str, env: dict | None = None, timeout_s: float = 60, prefix: tuple[str, ...] = ()):
    return subprocess.run([*prefix, "make", "--no-print-directory", *args], cwd=ROOT, env=env or _make_env(),
                          capture_output=True, text=True, timeout=timeout_s)


def _no_network_prefix() -> tuple[str, ...]:
    """`unshare --net` (as root) or with a user namespace: a network namespace with only a loopback that is down."""
    if shutil.which("unshare") is None:
        return ()
    for prefix in (("unshare", "--net"), ("unshare", "--net", "--map-root-user")):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    return ()


def _du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def _setup_lines(venv: Path, wheelhouse: Path) -> list[str]:
    out = _make("-n", "setup", f"VENV={venv}", f"WHEELHOUSE={wheelhouse}")
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@needs_make
def test_setup_installs_from_a_complete_wheelhouse_only(tmp_path):
    """With FOLDER/PLATFORM every install of set-up reads the folder alone; without it, set-up is as before."""
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    online = [line for line in _setup_lines(tmp_path / "venv", wheelhouse) if "pip install" in line]
    assert online and not any("--no-index" in line for line in online), online
    assert any('-e ".[dev,ray]"' in line for line in online), online

    (wheelhouse / "PLATFORM").write_text("CPython 3.11 on linux-x86_64\n")  # written last by prepare_offline.sh
    lines = _setup_lines(tmp_path / "venv", wheelhouse)
    pip_lines = [line for line in lines if "pip install" in line]
    assert len(pip_lines) == 2 and all(f"--no-index --find-links {wheelhouse}" in line for line in pip_lines), lines
    assert pip_lines[-1].endswith("-e ."), "a classroom set-up installs no dev or ray extras"
    assert "-c constraints.txt" in pip_lines[-1], "the torch pin applies offline too"
    assert any(line.startswith(f"WHEELHOUSE={wheelhouse} bash scripts/install_torch.sh") for line in lines), lines


@needs_make
def test_make_wheelhouse_runs_the_prepare_script():
    out = _make("-n", "wheelhouse", "WHEELHOUSE=/tmp/some-folder")
    assert out.returncode == 0, out.stderr
    assert "scripts/prepare_offline.sh" in out.stdout and out.stdout.rstrip().endswith("/tmp/some-folder")
    for script in ("prepare_offline.sh", "install_torch.sh"):
        check = subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> tuple[Path, float]:
    """`make wheelhouse` into a temporary folder, once per run, with its wall time in seconds."""
    folder = tmp_path_factory.mktemp("classroom") / "wheels"
    start = time.monotonic()
    out = _make(f"VENV={sys.prefix}", f"WHEELHOUSE={folder}", "wheelhouse", timeout_s=600)
    assert out.returncode == 0, f"make wheelhouse failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return folder, time.monotonic() - start


@pytest.mark.slow
@pytest.mark.timeout(900)
@needs_make
def test_make_lab_sets_up_offline_from_the_wheelhouse(wheelhouse, tmp_path):
    folder, prepare_s = wheelhouse
    names = sorted(p.name for p in folder.iterdir() if p.name not in {"PLATFORM", ".gitignore"})
    assert names and all(n.endswith(".whl") for n in names), f"wheels only, laptops build nothing: {names}"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert (folder / "PLATFORM").read_text().splitlines()[0] == f"CPython {python} on {sysconfig.get_platform()}"
    torch_wheels = [n for n in names if n.startswith("torch-")]
    assert len(torch_wheels) == 1, torch_wheels
    if sys.platform.startswith("linux"):
        assert "+cpu" in torch_wheels[0], f"not the CPU build: {torch_wheels[0]}"
    assert not [n for n in names if n.lower().startswith(("nvidia_", "triton-"))], "CUDA wheels in the folder"
    assert not [n for n in names if n.lower().startswith(("pytest-", "ray-", "sae_lens-", "playwright-"))], \
        "the dev, test and ray extras stay out of a classroom folder"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    no_network = _no_network_prefix()
    # no find-links or index from this machine's pip settings: only the folder can supply a wheel
    env = _make_env(pip_settings=False, PIP_CONFIG_FILE=os.devnull)
    start = time.monotonic()
    out = _make(f"VENV={venv}", f"WHEELHOUSE={folder}", "setup", env=env, timeout_s=780, prefix=no_network)
    setup_s = time.monotonic() - start
    assert out.returncode == 0, f"offline make setup failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"

    smoke = ("import workbench as wb, widgets, torch\n"
             "from widgets import Workbench\n"
             "h = wb.random_model('tiny', seed=0)\n"
             "clip = wb.generate(h, 'jazz', duration_s=0.2, seeds=[0]).clips[0]\n"
             "print(torch.__version__, clip.codes.shape)\n")
    run = subprocess.run([str(venv / "bin" / "python"), "-c", smoke], capture_output=True, text=True,
                         timeout=300, env={**_make_env(), "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    missing = subprocess.run([str(venv / "bin" / "python"), "-c", "import pytest"], capture_output=True, cwd=tmp_path)
    assert missing.returncode != 0, "pytest (the dev extra) came along"

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "offline-install.json").write_text(json.dumps({
        "platform": (folder / "PLATFORM").read_text().splitlines()[0],
        "wheels": len(names), "wheelhouse_mb": round(_du_mb(folder)), "venv_mb": round(_du_mb(venv)),
        "make_wheelhouse_s": round(prepare_s, 1), "offline_make_setup_s": round(setup_s, 1),
        "no_network": " ".join(no_network) or "pip config off and --no-index only (unshare unavailable)",
        "smoke": run.stdout.strip()}, indent=2) + "\n")

"""The Makefile's `lab` target itself: it starts JupyterLab on the quickstart (as root too) and stops cleanly.

`make lab` runs with PORT set to a free port and LAB_ARGS="--no-browser --ip=127.0.0.1 --IdentityProvider.token=T";
`-o <stamp>` tells make never to re-run the setup recipe from inside a test.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "notebooks" / "01_quickstart.ipynb"
VENV = Path(sys.prefix)  # the environment running the tests is the one `make` should use
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 20

needs_make = pytest.mark.skipif(
    os.name != "posix" or shutil.which("make") is None or not (VENV / "bin" / "jupyter").exists(),
    reason=f"needs POSIX, `make` on PATH and {VENV}/bin/jupyter (run `make setup`)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_cmd(*args: str) -> list[str]:
    # VENV: this interpreter's environment; -o: treat the setup stamp as up to date (no reinstall here)
    return ["make", "--no-print-directory", f"VENV={VENV}", "-o", f"{VENV}/.installed", *args]


def _make_env() -> dict:
    """os.environ without an outer make's flags and variables (`make test` runs us)."""
    return {k: v for k, v in os.environ.items()
            if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PORT", "LAB_ARGS", "JUPYTER_PATH"}}


def _clean_env(tmp: Path) -> dict:
    """_make_env() with Jupyter's config, data and runtime dirs in `tmp` (nothing read from or left in ~)."""
    env = _make_env()
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                 "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):
        path = tmp / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    return env


def _live_group_members(pgid: int) -> list[str]:
    """Processes (not zombies) still in process group `pgid`, as 'pid command' strings."""
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs: ask the kernel whether the group still exists
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [f"group {pgid}"]
    members = []
    for stat in proc.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            state, _ppid, group = text[text.rindex(")") + 2:].split()[:3]
            if int(group) == pgid and state != "Z":
                members.append(f"{stat.parent.name} {text[text.index('(') + 1:text.rindex(')')]}")
    return members


def _get(url: str, timeout_s: float = 10) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return response.status, response.read().decode("utf-8", errors="replace")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class MakeLab:
    """`make lab` in its own process group, with a free port, a token and no browser."""

    def __init__(self, tmp: Path):
        self.tmp, self.port, self.token = tmp, _free_port(), secrets.token_hex(16)
        self.env = _clean_env(tmp)
        self.log_path = tmp / "make-lab.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n_chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n_chars:] if self.log_path.exists() else ""

    def __enter__(self) -> MakeLab:
        lab_args = (f"--no-browser --ip=127.0.0.1 --IdentityProvider.token={self.token} "
                    "--ServerApp.port_retries=0 --LabApp.news_url=None")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(_make_cmd("lab", f"PORT={self.port}", f"LAB_ARGS={lab_args}"),
                                         cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"`make lab` exited with {self.proc.returncode} before the server "
                                     f"answered:\n{self.log_tail()}")
            try:
                if _get(f"{self.base_url}/api/status?token={self.token}", timeout_s=3)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"`make lab` did not answer on port {self.port} in {START_TIMEOUT_S} s:\n"
                             f"{self.log_tail()}")

    def browser_url(self, timeout_s: float = 15) -> str:
        """The URL `make lab` tells the browser to open (Jupyter's file-to-run redirect page)."""
        runtime = Path(self.env["JUPYTER_RUNTIME_DIR"])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for page in runtime.glob("jpserver-file-to-run-*-open.html"):
                found = re.search(r'url=([^"\s]+)', page.read_text())
                if found:
                    return found.group(1)
            time.sleep(0.3)
        raise AssertionError(f"no jpserver-file-to-run-*-open.html in {runtime}: did `make lab` pass the "
                             f"quickstart notebook?\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the whole group (make and jupyter), SIGKILL whatever is left after STOP_TIMEOUT_S."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is make's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(STOP_TIMEOUT_S)
        while _live_group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _live_group_members(pgid) or self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)

    def __exit__(self, *exc) -> None:
        self.stop()


@needs_make
def test_make_lab_command_line():
    """PORT and LAB_ARGS reach `jupyter lab`; --allow-root is added exactly when running as root."""
    out = subprocess.run(_make_cmd("-n", "lab", "PORT=18123", "LAB_ARGS=--no-browser --foo=1"), cwd=ROOT,
                         env=_make_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = next(cmd for cmd in out.stdout.splitlines() if "jupyter lab" in cmd)
    assert "--port=18123" in line and "--no-browser --foo=1" in line and "01_quickstart.ipynb" in line, line
    assert ("--allow-root" in line) == (os.geteuid() == 0), line
    # the address printed with --no-browser opens the quickstart (relative to the server's root, notebooks/)
    assert "--ServerApp.root_dir=notebooks/ --LabApp.default_url=/lab/tree/01_quickstart.ipynb" in line, line


@pytest.mark.slow
@pytest.mark.timeout(300)
@needs_make
def test_make_lab_serves_the_quickstart(tmp_path):
    """`make lab` starts (as root too), points the browser at the quickstart, serves it, and stops cleanly."""
    lab = MakeLab(tmp_path)
    with lab:
        url = lab.browser_url()
        parsed = urllib.parse.urlsplit(url)
        assert parsed.hostname == "127.0.0.1" and parsed.port == lab.port, url
        assert parsed.path.startswith("/lab/tree/"), url
        nb_path = urllib.parse.unquote(parsed.path[len("/lab/tree/"):])  # relative to the server's root
        assert PurePosixPath(nb_path).name == "01_quickstart.ipynb", url

        status, page = _get(url)  # the JupyterLab page the browser would open
        assert status == 200 and "<title>JupyterLab</title>" in page, page[:500]
        assert f'"treePath": "{nb_path}"' in page, "the lab page does not open the quickstart"

        quoted = urllib.parse.quote(nb_path)
        status, body = _get(f"{lab.base_url}/api/contents/{quoted}?type=notebook&token={lab.token}")
        served = json.loads(body)
        assert status == 200 and served["name"] == "01_quickstart.ipynb" and served["type"] == "notebook"
        on_disk = json.loads(QUICKSTART.read_text())
        first_cell = served["content"]["cells"][0]["source"]
        assert first_cell.startswith("# Quickstart"), first_cell[:200]
        assert first_cell == "".join(on_disk["cells"][0]["source"])
        assert len(served["content"]["cells"]) == len(on_disk["cells"])

        # with --no-browser, the printed address (and `/`) opens the quickstart, not the Launcher
        printed = f"http://127.0.0.1:{lab.port}/lab/tree/01_quickstart.ipynb?token="
        assert printed in lab.log_tail(20000), lab.log_tail()
        with urllib.request.urlopen(f"{lab.base_url}/?token={lab.token}", timeout=10) as response:  # redirected
            assert urllib.parse.urlsplit(response.url).path == "/lab/tree/01_quickstart.ipynb", response.url

        # no "Would you like to get notified about official Jupyter news?" prompt: the setting defaults to Never
        status, body = _get(f"{lab.base_url}/lab/api/settings/@jupyterlab/apputils-extension:notification"
                            f"?token={lab.token}")
        properties = json.loads(body)["schema"]["properties"]
        assert status == 200 and properties["fetchNews"]["default"] == "false", properties["fetchNews"]
        assert properties["checkForUpdates"]["default"] is False
    assert lab.proc.poll() is not None, "make lab still running after stop()"
    assert not _live_group_members(lab.proc.pid), f"left running: {_live_group_members(lab.proc.pid)}"
    assert not _port_open(lab.port), f"something still listens on port {lab.port}"

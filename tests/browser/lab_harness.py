"""Drive JupyterLab in Debian's chromium with Playwright (no downloaded browser).

`JupyterLab(root_dir)` starts a server on loopback with a token and isolated config dirs
(announcements off, kernel autostart); `open_browser(profile_dir)` launches /usr/bin/chromium;
`LabPage` opens a notebook, waits for an idle kernel, runs all cells and takes screenshots.
Facts behind the choices: /work/shared/NOTES-browser-testing.md.

    with JupyterLab(nb_dir) as lab, open_browser(tmp / "profile") as ctx:
        page = LabPage(ctx.new_page(), lab, artifacts_dir)
        page.open("demo.ipynb"); page.run_all(); page.shot("after-run")
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio"]


def chromium_missing_reason() -> str | None:
    """None when Debian's chromium and the playwright package are usable, else why not."""
    if not os.path.exists(CHROMIUM):
        return "Debian's chromium is absent: run `make browser-deps` (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright python package is absent: pip install -e '.[dev]'"
    return None


# `WORKBENCH_BROWSER_FULL=1 pytest -m browser tests/browser` runs the notebooks at full size (no WORKBENCH_FAST),
# with Run All timeouts x FULL_TIMEOUT_FACTOR and screenshots named full-*.png: the check before a release.
FULL_SIZE = os.environ.get("WORKBENCH_BROWSER_FULL") == "1"
FULL_TIMEOUT_FACTOR = 8


def lab_copy(notebook: Path, tmp_path: Path) -> tuple[Path, dict]:
    """(folder holding a copy of ``notebook``, env for `JupyterLab`): autosave never touches the committed
    file; notebooks run small (WORKBENCH_FAST=1, unless FULL_SIZE), offline, on one OpenMP thread (see
    tests/test_notebooks.py)."""
    nb_dir = Path(tmp_path) / "nb"
    nb_dir.mkdir()
    shutil.copy(notebook, nb_dir / Path(notebook).name)
    repo = Path(__file__).resolve().parents[2]
    env = {"WORKBENCH_FAST": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "TMPDIR": str(tmp_path)}
    if FULL_SIZE:
        del env["WORKBENCH_FAST"]
    return nb_dir, env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A JupyterLab server in its own process group, with config/data/runtime dirs in a temp folder."""

    def __init__(self, root_dir: Path, env: dict | None = None, start_timeout_s: float = 90):
        self.root_dir = Path(root_dir)
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.extra_env = env or {}
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="wb-lab-")
        self.log_path = Path(self._tmp.name) / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict:
        home = Path(self._tmp.name)
        dirs = {name: home / sub for name, sub in [
            ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
            ("IPYTHONDIR", "ipython")]}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        # The news toast covers widgets; a random "Select Kernel" dialog blocks Run All.
        (dirs["JUPYTER_CONFIG_DIR"] / "labconfig").mkdir(exist_ok=True)
        (dirs["JUPYTER_CONFIG_DIR"] / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
        tracker = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True, exist_ok=True)
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"autoStartDefaultKernel": True}))
        env = dict(os.environ, **{k: str(v) for k, v in dirs.items()}, **self.extra_env)
        env.pop("JUPYTER_PATH", None)
        return env

    def __enter__(self) -> JupyterLab:
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               f"--IdentityProvider.token={self.token}", "--allow-root", f"--ServerApp.root_dir={self.root_dir}",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=self._env(), stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/status?token={self.token}", timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise TimeoutError(f"JupyterLab did not answer in {self.start_timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, n_chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n_chars:] if self.log_path.exists() else ""

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()
        self._tmp.cleanup()

    def url(self, notebook: str) -> str:
        return f"{self.base_url}/lab/tree/{notebook}?token={self.token}"


@contextlib.contextmanager
def open_browser(profile_dir: Path, viewport=(1400, 1000)):
    """A persistent chromium context (Playwright refuses --user-data-dir in args)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]})
        try:
            yield ctx
        finally:
            ctx.close()


_KERNEL_READY_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""

_RUN_STATE_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const k = w.sessionContext.session.kernel;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  for (const c of cells) for (const o of c.model.outputs.toJSON())
    if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
  return {idle: k.status === 'idle', done: cells.filter(c => c.model.executionCount).length,
          total: cells.length,
          pending: cells.filter(c => c.promptNode && c.promptNode.textContent.includes('*')).length,
          errors};
}"""


# Plots a view hides until it has something to show (display: none: the trace and patching views before their
# first run) are not counted.
_PLOTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
  .filter(el => el.getClientRects().length > 0).map(el => {
  const t = el.layout && el.layout.title;
  const svgTitle = el.querySelector('.gtitle');
  return {title: (t && (t.text ?? t)) || (svgTitle && svgTitle.textContent) || '',
          traces: el.data ? el.data.length : 0,
          drawn: el.querySelectorAll('.cartesianlayer g.trace, .heatmaplayer image, .hm image').length};
})"""


class LabPage:
    """One notebook tab: open, run all, screenshot (to `artifacts_dir/<prefix><name>.png`)."""

    def __init__(self, page, lab: JupyterLab, artifacts_dir: Path, prefix: str = ""):
        self.page, self.lab, self.prefix = page, lab, ("full-" if FULL_SIZE else "") + prefix
        self.artifacts_dir = Path(artifacts_dir)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.shots: list[Path] = []

    def open(self, notebook: str, timeout_s: float = 90) -> None:
        self.page.goto(self.lab.url(notebook))
        self.page.wait_for_function(_KERNEL_READY_JS, timeout=timeout_s * 1000, polling=250)

    def run_all(self, timeout_s: float = 180) -> dict:
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        deadline = time.monotonic() + timeout_s * (FULL_TIMEOUT_FACTOR if FULL_SIZE else 1)
        state = {}
        while time.monotonic() < deadline:
            time.sleep(0.5)
            state = self.page.evaluate(_RUN_STATE_JS)
            if state["errors"]:
                raise AssertionError(f"a cell raised: {state['errors']}")
            if state["idle"] and state["pending"] == 0 and state["done"] == state["total"]:
                return state
        raise TimeoutError(f"Run All did not finish in {timeout_s} s: {state}")

    def plots(self) -> list[dict]:
        """Every plotly plot on the page: its title, number of traces and of drawn marks."""
        return self.page.evaluate(_PLOTS_JS)

    def assert_plots_filled(self, at_least: int = 1, timeout_s: float = 30) -> list[dict]:
        """Every plot has data and a title (a view drawn from stale state shows empty axes). Waits up to
        `timeout_s` for plots still being drawn (the last outputs of a Run All)."""
        deadline = time.monotonic() + timeout_s
        while True:
            plots = self.plots()
            empty = [p for p in plots if not p["traces"] or not p["drawn"] or not p["title"].strip()]
            if (len(plots) >= at_least and not empty) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(plots) >= at_least, f"{len(plots)} plots on the page, expected at least {at_least}"
        assert not empty, f"plots without data or title after {timeout_s:g} s: {empty} (of {len(plots)})"
        return plots

    def save_and_reload(self, min_plots: int = 1, timeout_s: float = 90) -> None:
        """Save the notebook, reload the page (widget models are rebuilt from the kernel's state) and wait
        until `min_plots` plots are drawn again."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        self.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)
        self.page.reload()
        self.page.wait_for_function(_KERNEL_READY_JS, timeout=timeout_s * 1000, polling=250)
        self.page.wait_for_function(
            f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {min_plots}",
            timeout=timeout_s * 1000, polling=500)
        time.sleep(2)  # the last plots' traces

    def shot(self, name: str) -> Path:
        path = self.artifacts_dir / f"{self.prefix}{name}.png"
        self.page.screenshot(path=str(path))
        self.shots.append(path)
        return path

"""mkdocs hooks for the documentation site (named in mkdocs.yml; `make docs` builds it).

- Doctests in docstrings (``>>>`` lines and their output) become ``pycon`` code blocks: markdown would
  otherwise read them as nested block quotes and ``x["a"]["b"]`` as a link reference.
- The notebooks are the copies tests/test_notebooks.py executed and saved (test-artifacts/notebooks/),
  added to the site as ``notebooks/<name>.ipynb`` for mkdocs-jupyter to render with their outputs; a
  missing copy stops the build with the command that makes it.
"""
from __future__ import annotations

import re
from pathlib import Path

from markdown import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
EXECUTED_DIR = ROOT / "test-artifacts" / "notebooks"
_FENCE = re.compile(r"^\s*(```|~~~)")
_PROMPT = re.compile(r"^(\s*)>>> ")


class _DoctestBlocks(Preprocessor):
    """Wraps each run of doctest lines (``>>>``, ``...`` and the output up to a blank line) in a fence."""

    def run(self, lines: list[str]) -> list[str]:
        out, in_fence, i = [], False, 0
        while i < len(lines):
            line = lines[i]
            if _FENCE.match(line):
                in_fence = not in_fence
            prompt = None if in_fence else _PROMPT.match(line)
            if not prompt:
                out.append(line)
                i += 1
                continue
            indent = prompt.group(1)
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
                i += 1
            out += ["", f"{indent}```pycon", *(indent + b for b in block), f"{indent}```", ""]
        return out


class DoctestExtension(Extension):
    def extendMarkdown(self, md):  # noqa: N802 (Markdown's API)
        md.preprocessors.register(_DoctestBlocks(md), "doctest_blocks", 40)  # before the fences (25-30)


@event_priority(100)  # before mkdocstrings reads the extension list
def on_config(config):
    config.markdown_extensions.append(DoctestExtension())
    return config


def executed_notebooks() -> list[Path]:
    """The executed copy of every notebook, or an error naming the command that makes the missing ones."""
    names = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))
    missing = [n for n in names if not (EXECUTED_DIR / n).exists()]
    if missing:
        raise PluginError(f"no executed copy of {', '.join(missing)} in {EXECUTED_DIR}: run `make docs` (it executes "
                          "them), or `python -m pytest -m slow tests/test_notebooks.py -k executes`")
    return [EXECUTED_DIR / n for n in names]


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files, config):
    for path in executed_notebooks():
        files.append(File(f"notebooks/{path.name}", src_dir=str(path.parent.parent), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    return files


_REMOTE_ASSET = re.compile(r"""<(?:script|img|iframe)\b[^>]*\bsrc=["']https?://|<link\b[^>]*\bhref=["']https?://[^"']*["'][^>]*rel=["']stylesheet|<link\b[^>]*rel=["']stylesheet["'][^>]*\bhref=["']https?://""")


def on_post_build(config):
    """The site must open from disk with no network: no page may load a script, stylesheet or image from the web."""
    remote = []
    for page in Path(config.site_dir).rglob("*.html"):
        match = _REMOTE_ASSET.search(page.read_text(encoding="utf-8"))
        if match:
            remote.append(f"{page.relative_to(config.site_dir)}: {match.group(0)[:120]}")
    if remote:
        raise PluginError("pages that load from the network (the site must work offline):\n" + "\n".join(remote))

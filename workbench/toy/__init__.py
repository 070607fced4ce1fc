"""The embedded teaching model: a tiny MusicGen trained on synthesised four-genre music.

Light on import (no torch): `WEIGHTS_DIR` is the `save_pretrained` folder that
`workbench.load_model()` loads when no name is given; `synth`, `judge` and friends are submodules.

Example:
    >>> from workbench.toy import WEIGHTS_DIR, GENRES
    >>> (WEIGHTS_DIR / "config.json").exists()
    True
"""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
GENRES = ("classical", "electronic", "rock", "jazz")

__all__ = ["WEIGHTS_DIR", "GENRES"]

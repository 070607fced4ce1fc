"""The embedded teaching model: a tiny MusicGen trained on synthesised four-genre music.

Light on import (no torch): `WEIGHTS_DIR` is the `save_pretrained` folder that
`workbench.load_model()` loads when no name is given; `synth`, `judge` and friends are submodules.

Example:
    >>> from workbench.toy import WEIGHTS_DIR, GENRES
    >>> (WEIGHTS_DIR / "config.json").exists()
    True
    >>> synth_version() in (1, 2)
    True
"""

import json
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
GENRES = ("classical", "electronic", "rock", "jazz")



def synth_version(weights=None) -> int:
    """Which synthesiser a teaching model was trained on: 1 (`workbench.toy.synth`, genre only) or 2
    (`workbench.toy.synth_v2`, seven factors), from its ``training_info.json`` (1 when absent)."""
    info = Path(weights if weights is not None else WEIGHTS_DIR) / "training_info.json"
    if not info.exists():
        return 1
    return int(json.loads(info.read_text()).get("recipe", {}).get("synth_version", 1))


__all__ = ["WEIGHTS_DIR", "GENRES", "synth_version"]

"""The embedded teaching model: a tiny MusicGen trained on synthesised four-genre music.

Light on import (no torch): `WEIGHTS_DIR` is the `save_pretrained` folder that
`workbench.load_model()` loads when no name is given; `synth`, `judge` and friends are submodules.

Example:
    >>> from workbench.toy import WEIGHTS_DIR, GENRES
    >>> (WEIGHTS_DIR / "config.json").exists()
    True
    >>> synth_version() in (1, 2, 3)
    True
"""

import json
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
GENRES = ("classical", "electronic", "rock", "jazz")



def synth_version(weights=None) -> int:
    """Which synthesiser a teaching model was trained on: 1 (`workbench.toy.synth`, genre only), 2
    (`workbench.toy.synth_v2`, seven factors) or 3 (`workbench.toy.synth_v3`, v2's and ``bass``), from its
    ``training_info.json`` (1 when absent)."""
    info = Path(weights if weights is not None else WEIGHTS_DIR) / "training_info.json"
    if not info.exists():
        return 1
    return int(json.loads(info.read_text()).get("recipe", {}).get("synth_version", 1))


SYNTH_VERSIONS = (1, 2, 3)


def synth_module(version: int | None = None):
    """The synthesiser module of data `version` (None: the shipped model's, `synth_version`).

        >>> synth_module(2).__name__, sorted(synth_module(3).FACTORS)[:2]
        ('workbench.toy.synth_v2', ['bass', 'brightness'])
    """
    import importlib

    version = synth_version() if version is None else version
    if isinstance(version, bool) or version not in SYNTH_VERSIONS:
        raise ValueError(f"synth version {version!r}: use 1 (genre only), 2 (seven factors) or 3 (v2's and bass)")
    return importlib.import_module({1: "workbench.toy.synth", 2: "workbench.toy.synth_v2",
                                    3: "workbench.toy.synth_v3"}[version])


__all__ = ["WEIGHTS_DIR", "GENRES", "SYNTH_VERSIONS", "synth_module", "synth_version"]

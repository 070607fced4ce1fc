"""The workbench's closed vocabularies, torch-free (the widgets and validation import them).

Example:
    >>> from workbench.enums import SITES, POOLINGS
    >>> "resid" in SITES, POOLINGS[0]
    (True, 'none')
"""
from __future__ import annotations

SITES = ("resid", "attn", "mlp")                      # resid: block output; attn: self_attn; mlp: fc2
POOLINGS = ("none", "last", "mean", "max", "mean_std")
CAPTURE_ROWS = ("cond", "uncond", "both")             # CFG rows captured
STEERING_MODES = ("add", "norm_relative")
STEERING_ROWS = ("cond", "both")                      # CFG rows steered
SCHEDULE_KINDS = ("constant", "decay", "pulse", "ramp")
INPUT_MODES = ("text", "continuation", "audio")          # generate, continue an audio prompt, teacher-force

__all__ = ["CAPTURE_ROWS", "INPUT_MODES", "POOLINGS", "SCHEDULE_KINDS", "SITES", "STEERING_MODES", "STEERING_ROWS"]

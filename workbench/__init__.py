"""musicgen-workbench core: load MusicGen, capture its residual stream, steer it while it generates.

Example:
    >>> import workbench as wb
    >>> h = wb.random_model("tiny")
    >>> clip = wb.generate(h, "calm jazz piano", duration_s=0.2).clips[0]
    >>> clip.codes.shape
    (4, 10)
"""
from .capture import CaptureSpec
from .clip import Clip
from .errors import WorkbenchError
from .generation import GenerationResult, generate
from .model import MusicGenHandle, load_model, random_model
from .steering import Schedule, SteeringSpec, SteeringTerm
from .teacher_forcing import teacher_force

__all__ = ["CaptureSpec", "Clip", "GenerationResult", "MusicGenHandle", "Schedule", "SteeringSpec",
           "SteeringTerm", "WorkbenchError", "generate", "load_model", "random_model", "teacher_force"]

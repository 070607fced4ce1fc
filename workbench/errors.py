"""Specific errors: each names what went wrong and how to fix it.

Every error the workbench raises on purpose subclasses `WorkbenchError`; those caused by bad
input also subclass `ValueError`, so generic `except ValueError` code keeps working.
"""


class WorkbenchError(Exception):
    """Base class of every deliberate workbench error."""


class BadInputError(WorkbenchError, ValueError):
    """An argument is malformed; the message says what to pass instead."""


class LayerOutOfRangeError(BadInputError):
    """A layer index outside the model's decoder layers."""


class UnknownSiteError(BadInputError):
    """A capture or steering site that does not exist."""


class DirectionMismatchError(BadInputError):
    """A direction of the wrong size, or made on another model."""


class NotFiniteError(BadInputError):
    """A NaN or infinite value where a finite number is required."""


class EmptyInputError(BadInputError):
    """An empty list of prompts, seeds or clips."""


class DurationError(BadInputError):
    """A duration the model cannot generate (beyond its positions, or too short)."""


class WrongTypeError(BadInputError, TypeError):
    """An argument of the wrong kind (a string where a list of ints belongs, a bool for a count...)."""


class OutOfRangeError(BadInputError):
    """A number outside the range that makes sense for it (a negative batch size, guidance below 1...)."""


class UnknownOptionError(BadInputError):
    """A value that is not one of an argument's named options (pooling, rows, mode, schedule kind)."""


class PromptTooLongError(BadInputError):
    """A text prompt longer than the text encoder reads."""


class AudioFormatError(BadInputError):
    """Audio whose shape or sample type cannot be read as a mono clip."""


class ZeroNormError(BadInputError):
    """A direction of zero length where its direction matters."""


class ModelNotAvailableError(WorkbenchError, OSError):
    """The weights are not on this machine and cannot be downloaded."""


class NotAMusicGenError(BadInputError):
    """A folder or checkpoint that does not hold a MusicGen model."""


class StoppedError(WorkbenchError):
    """Generation was stopped by the user (e.g. the Stop button)."""


class CorruptFileError(WorkbenchError, OSError):
    """A file the workbench wrote (manifest, sidecar, shard, safetensors) that cannot be read back.

    ``path`` names the file; the message says what to do (delete it, `store.repair()`, re-save).
    """

    def __init__(self, path, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")

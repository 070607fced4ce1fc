"""Patching, ablation and step traces tried as a hostile user would (issue 28): every bad input is refused
with a workbench error that names the fix, before any forward or generation runs."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.analysis import patching as P
from workbench.analysis import step_traces as S
from workbench.analysis.directions import Direction
from workbench.errors import (
    BadInputError,
    DirectionMismatchError,
    DurationError,
    EmptyInputError,
    LayerOutOfRangeError,
    NotFiniteError,
    OutOfRangeError,
    UnknownOptionError,
    UnknownSiteError,
    WorkbenchError,
    WrongTypeError,
    ZeroNormError,
)
from workbench.runtime.edits import Edit
from workbench.runtime.settings import GenerationSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GEN = {"duration_s": 0.2, "seed": 1}


class Ctx:
    """The tiny model, two equal-length teacher-forced inputs and a few directions."""

    def __init__(self):
        self.h = wb.random_model("tiny", seed=1)
        a, b = wb.generate(self.h, ["calm jazz", "loud rock"], duration_s=0.3, seeds=[1, 2]).clips
        self.src, self.tgt = P.ForcedInput.of(self.h, a), P.ForcedInput.of(self.h, b)
        self.n = self.src.frames + self.h.delay_steps  # positions of a teacher-forced run
        self.v = np.random.default_rng(0).normal(size=self.h.hidden_size).astype(np.float32)
        self.nan = self.v.copy()
        self.nan[3] = np.nan
        self.inf = self.v.copy()
        self.inf[0] = np.inf
        self.zero = np.zeros(self.h.hidden_size, np.float32)
        self.other = Direction(self.v, "facebook/musicgen-small", layer=1)
        self.mine = Direction(self.v, self.h.model_id, layer=1)


@pytest.fixture(scope="module")
def c():
    return Ctx()


@pytest.fixture
def no_work(monkeypatch):
    """Any forward or generation fails the test: the checks must come first."""
    def ran(*args, **kwargs):
        raise AssertionError("a forward or generation ran before the arguments were checked")
    for module in (P, S):
        for name in ("traced_forward", "generate_traced"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, ran)


SETTINGS = {field.name for field in dataclasses.fields(GenerationSettings)}
PATCH = ("layer", "site", "window", "direction", "rows")                       # PatchSpec's fields
ABLATE = ("layers", "site", "window", "value", "rows")                         # AblationSpec's, but its direction
PATCH_SWEEP = ("mode", "sites", "layers", "windows", "direction", "rows", "metric", "label")
ABLATION_SWEEP = ("mode", "site", "layers", "windows", "value", "rows", "metric", "label")


def _split(kw, names) -> dict:
    """The keywords among ``names``, taken out of ``kw``."""
    return {k: kw.pop(k) for k in list(kw) if k in names}


def _settings(kw):
    """The generation keywords of ``kw`` (``seed`` for ``seeds``) as one GenerationSettings, taken out of it."""
    fields = {("seeds" if k == "seed" else k): kw.pop(k) for k in list(kw) if k in SETTINGS or k == "seed"}
    return GenerationSettings(**fields) if fields else None


def pf(c, **kw):
    kw = {"layer": 1, **kw}
    return P.patch_forward(c.h, c.src, c.tgt, P.PatchSpec(**_split(kw, PATCH)), **kw)


def af(c, direction="v", **kw):
    kw = {"layers": [1], **kw}
    return P.ablate_forward(c.h, c.tgt, P.AblationSpec(_direction(c, direction), **_split(kw, ABLATE)), **kw)


def gp(c, **kw):
    kw = {"layer": 1, **GEN, **kw}
    spec = P.PatchSpec(**_split(kw, PATCH))
    return P.generate_patched(c.h, "calm jazz", "loud rock", spec, _settings(kw), **kw)


def ga(c, direction="v", **kw):
    kw = {"layers": [1], **GEN, **kw}
    spec = P.AblationSpec(_direction(c, direction), **_split(kw, ABLATE))
    return P.generate_ablated(c.h, "loud rock", spec, _settings(kw), **kw)


def sweep(c, **kw):
    kw = {"layers": [0], "windows": 1, **kw}
    config = P.PatchSweep(**_split(kw, PATCH_SWEEP))
    return P.patching_sweep(c.h, c.src, c.tgt, config, _settings(kw), **kw)


def gsweep(c, **kw):
    kw = {"mode": "generate", "layers": [0], "windows": 1, "metric": lambda clip: 0.5, "duration_s": 0.2, **kw}
    config = P.PatchSweep(**_split(kw, PATCH_SWEEP))
    return P.patching_sweep(c.h, "calm jazz", "loud rock", config, _settings(kw), **kw)


def asweep(c, direction="v", **kw):
    kw = {"layers": [0], "windows": 1, **kw}
    config = P.AblationSweep(**_split(kw, ABLATION_SWEEP))
    return P.ablation_sweep(c.h, c.tgt, _direction(c, direction), config, _settings(kw), **kw)


def gasweep(c, direction="v", **kw):
    kw = {"mode": "generate", "layers": [0], "windows": 1, "metric": lambda clip: 0.5, "duration_s": 0.2, **kw}
    config = P.AblationSweep(**_split(kw, ABLATION_SWEEP))
    return P.ablation_sweep(c.h, "loud rock", _direction(c, direction), config, _settings(kw), **kw)


def trace(c, direction="v", **kw):
    kw = {"duration_s": 0.2, **kw}
    return S.trace_steps(c.h, ["jazz"], _direction(c, direction), _settings(kw), **kw)


SHORT = GenerationSettings(duration_s=0.2)


def trace_of(**kw):
    fields = {"projection": np.zeros((3, 4, 1)), "norm": np.ones((3, 4, 1)), "clips": [None], "layers": (0, 1, 2),
              "site": "resid", "frame_rate_hz": 50.0, **kw}
    return S.StepTrace(**fields)


WINDOWS = [  # (window, error, message): every entry point that takes a window refuses these
    ((8, 2), EmptyInputError, r"\(8, 2\) is reversed: .*pass start < stop, e.g. \(2, 8\)"),
    ((3, 3), EmptyInputError, r"\(3, 3\) is empty"),
    ((-5, -1), OutOfRangeError, "negative"),
    ((-1, 4), OutOfRangeError, "negative"),
    ((10_000, 20_000), OutOfRangeError, "beyond the run's"),
    ((0, 10_000), OutOfRangeError, "beyond the run's"),
    ((0.5, 3), WrongTypeError, "whole number"),
    ((0, float("nan")), NotFiniteError, "not finite"),
    ((True, 3), WrongTypeError, "bool"),
    ("0:3", WrongTypeError, r"\(start, stop\) pair"),
    ((0, 1, 2), WrongTypeError, "has 3 items"),
    ((4,), WrongTypeError, "has 1 items"),
    (3, WrongTypeError, r"\(start, stop\) pair"),
    ({"start": 0}, WrongTypeError, r"\(start, stop\) pair"),
    (("0", "3"), WrongTypeError, "str"),
]


@pytest.mark.parametrize("call", [pf, gp, lambda c, window: af(c, window=window),
                                  lambda c, window: ga(c, window=window)],
                         ids=["patch_forward", "generate_patched", "ablate_forward", "generate_ablated"])
@pytest.mark.parametrize("window,error,match", WINDOWS, ids=[repr(w[0]) for w in WINDOWS])
def test_a_bad_window_is_refused_before_any_work(c, no_work, call, window, error, match):
    with pytest.raises(error, match=match):
        call(c, window=window)


SWEEP_WINDOWS = [
    ([(8, 2)], EmptyInputError, r"windows\[0\]=\(8, 2\) is reversed"),
    ([(0, 2), (4, 4)], EmptyInputError, r"windows\[1\]=\(4, 4\) is empty"),
    ([(-3, 2)], OutOfRangeError, "negative"),
    ([(500, 600)], OutOfRangeError, "beyond the run's"),
    ([(0.5, 2)], WrongTypeError, "whole number"),
    ([0, 3], WrongTypeError, "flat list: pass a list of .start, stop. pairs"),
    ([], EmptyInputError, "windows=.. patches nothing"),
    ("4", WrongTypeError, "windows='4'"),
    (None, WrongTypeError, "windows=None"),
    (2.5, WrongTypeError, "whole number"),
    (True, WrongTypeError, "bool"),
    (0, OutOfRangeError, "at least 1"),
    (-2, OutOfRangeError, "at least 1"),
    (10 ** 9, OutOfRangeError, "ask for at most"),
    (float("inf"), NotFiniteError, "not finite"),
]


@pytest.mark.parametrize("call", [sweep, gsweep, lambda c, windows: asweep(c, windows=windows),
                                  lambda c, windows: gasweep(c, windows=windows)],
                         ids=["patching_sweep", "patching_sweep_generate", "ablation_sweep",
                              "ablation_sweep_generate"])
@pytest.mark.parametrize("windows,error,match", SWEEP_WINDOWS, ids=[repr(w[0]) for w in SWEEP_WINDOWS])
def test_a_bad_windows_argument_is_refused_before_any_work(c, no_work, call, windows, error, match):
    with pytest.raises(error, match=match):
        call(c, windows=windows)


DIRECTIONS = [  # (attribute of Ctx or a value, error, message)
    ("nan", NotFiniteError, "NaN or inf"),
    ("inf", NotFiniteError, "NaN or inf"),
    ("other", DirectionMismatchError, "made on model 'facebook/musicgen-small', not on 'random/tiny@seed1'.*"
                                      r"direction.vector"),
    (np.ones(7), DirectionMismatchError, "hidden size is 32"),
    (np.ones((2, 32)), DirectionMismatchError, "shape"),
    ("abc", WrongTypeError, "pass a Direction or a"),
    ({"v": 1}, WrongTypeError, "pass a Direction or a"),
    ([[1.0, 2.0], [3.0]], WrongTypeError, "ragged"),
    (np.array(["a"] * 32), WrongTypeError, "values"),
]


def _direction(c, value):
    return getattr(c, value) if isinstance(value, str) and hasattr(c, value) else value


DIRECTION_CALLS = {
    "patch_forward": lambda c, d: pf(c, direction=d),
    "generate_patched": lambda c, d: gp(c, direction=d),
    "patching_sweep": lambda c, d: sweep(c, direction=d),
    "patching_sweep_generate": lambda c, d: gsweep(c, direction=d),
    "ablate_forward": lambda c, d: af(c, d),
    "generate_ablated": lambda c, d: ga(c, d),
    "ablation_sweep": lambda c, d: asweep(c, d),
    "ablation_sweep_generate": lambda c, d: gasweep(c, d),
    "trace_steps": lambda c, d: trace(c, d),
    "trace_steered": lambda c, d: S.trace_steered(c.h, ["jazz"], d, wb.SteeringSpec.single(c.v, (1,), 1.0),
                                                  settings=SHORT),
}


@pytest.mark.parametrize("call", list(DIRECTION_CALLS.values()), ids=list(DIRECTION_CALLS))
@pytest.mark.parametrize("direction,error,match", DIRECTIONS, ids=[str(d[0])[:12] for d in DIRECTIONS])
def test_a_bad_direction_is_refused_before_any_work(c, no_work, call, direction, error, match):
    with pytest.raises(error, match=match):
        call(c, _direction(c, direction))


@pytest.mark.parametrize("call", list(DIRECTION_CALLS.values()), ids=list(DIRECTION_CALLS))
def test_a_zero_direction_is_refused_where_it_matters(c, no_work, call):
    with pytest.raises(ZeroNormError, match="zero length: .*(patch nothing|change nothing|nothing to project)"):
        call(c, c.zero)


@pytest.mark.parametrize("call", [lambda c: af(c, None), lambda c: ga(c, None), lambda c: asweep(c, None),
                                  lambda c: trace(c, None)],
                         ids=["ablate_forward", "generate_ablated", "ablation_sweep", "trace_steps"])
def test_no_direction_where_one_is_needed(c, no_work, call):
    with pytest.raises(WrongTypeError, match="direction=None"):
        call(c)


BAD_ARGS = [  # (id, call, error, message)
    ("patch_forward handle None", lambda c: P.patch_forward(None, c.src, c.tgt, P.PatchSpec(1)), WrongTypeError,
     "not a loaded model"),
    ("patch_forward source None", lambda c: P.patch_forward(c.h, None, c.tgt, P.PatchSpec(1)), WrongTypeError,
     r"ForcedInput.of\(handle, clip\)"),
    ("patch_forward source prompt", lambda c: P.patch_forward(c.h, "jazz", c.tgt, P.PatchSpec(1)), WrongTypeError,
     "mode='generate'"),
    ("patch_forward spec int", lambda c: P.patch_forward(c.h, c.src, c.tgt, 1), WrongTypeError,
     r"spec is a int, not a PatchSpec: pass e.g. PatchSpec\(layer=1"),
    ("patch_forward spec of ablation", lambda c: P.patch_forward(c.h, c.src, c.tgt, P.AblationSpec(c.v, [1])),
     WrongTypeError, "not a PatchSpec"),
    ("ablate_forward spec None", lambda c: P.ablate_forward(c.h, c.tgt, None), WrongTypeError,
     "spec is a NoneType, not an AblationSpec: pass e.g. AblationSpec"),
    ("generate_patched settings dict",
     lambda c: P.generate_patched(c.h, "calm jazz", "loud rock", P.PatchSpec(1), {"duration_s": 0.2}),
     WrongTypeError, "not a GenerationSettings"),
    ("patching_sweep sweep dict", lambda c: P.patching_sweep(c.h, c.src, c.tgt, {"windows": 2}), WrongTypeError,
     "not a PatchSweep"),
    ("ablation_sweep sweep of patching", lambda c: P.ablation_sweep(c.h, c.tgt, c.v, P.PatchSweep()),
     WrongTypeError, "sweep is a PatchSweep, not an AblationSweep"),
    ("patch_forward layer str", lambda c: pf(c, layer="1"), WrongTypeError, "layer='1'"),
    ("patch_forward layer 99", lambda c: pf(c, layer=99), LayerOutOfRangeError, "0-2"),
    ("patch_forward site", lambda c: pf(c, site="residual"), UnknownSiteError, "resid"),
    ("patch_forward guidance str", lambda c: pf(c, guidance_scale="3"), WrongTypeError, "guidance_scale"),
    ("patch_forward guidance nan", lambda c: pf(c, guidance_scale=float("nan")), NotFiniteError, "guidance_scale"),
    ("patch_forward guidance inf", lambda c: pf(c, guidance_scale=float("inf")), NotFiniteError, "guidance_scale"),
    ("patch_forward guidance 0.5", lambda c: pf(c, guidance_scale=0.5), OutOfRangeError, "guidance_scale"),
    ("patch_forward rows", lambda c: pf(c, rows="all"), UnknownOptionError, "rows"),
    ("patch_forward rows uncond unguided", lambda c: pf(c, rows="uncond"), BadInputError, "guidance"),
    ("patch_forward source_acts empty", lambda c: pf(c, source_acts={}), BadInputError, "record_forward"),
    ("patch_forward source_acts list", lambda c: pf(c, source_acts=[1]), BadInputError, "record_forward"),
    ("patch_forward source_acts shape", lambda c: pf(c, source_acts={("resid", 1): torch.zeros(1, 3, 32)}),
     BadInputError, "shape"),
    ("patch_forward edits", lambda c: pf(c, edits=[1]), WrongTypeError, r"edits\[0\] is a int: pass Edit"),
    ("patch_forward edits int", lambda c: pf(c, edits=5), WrongTypeError, "Edit"),
    ("patch_forward edits str", lambda c: pf(c, edits="read"), WrongTypeError, "Edit"),
    ("patch_forward edit layer 99", lambda c: pf(c, edits=[Edit("read", layer=99)]), LayerOutOfRangeError, "0-2"),
    ("patch_forward lengths",
     lambda c: P.patch_forward(c.h, P.ForcedInput(c.src.codes[:, :10]), c.tgt, P.PatchSpec(1)), BadInputError,
     "crop"),
    ("ablate_forward inp prompt", lambda c: P.ablate_forward(c.h, "jazz", P.AblationSpec(c.v, layers=[1])),
     WrongTypeError, "ForcedInput"),
    ("ablate_forward value nan", lambda c: af(c, value=float("nan")), NotFiniteError, "value"),
    ("ablate_forward value inf", lambda c: af(c, value=float("-inf")), NotFiniteError, "value"),
    ("ablate_forward value str", lambda c: af(c, value="2"), WrongTypeError, "value"),
    ("ablate_forward value huge", lambda c: af(c, value=1e30), OutOfRangeError, "value"),
    ("ablate_forward layers str", lambda c: af(c, layers="12"), WrongTypeError, "layers='12' is a string"),
    ("ablate_forward layers empty", lambda c: af(c, layers=[]), EmptyInputError, "layers is empty"),
    ("ablate_forward layers None", lambda c: af(c, layers=None), WrongTypeError, "layers=None"),
    ("ablate_forward layers bool", lambda c: af(c, layers=[True]), WrongTypeError, "bool"),
    ("ablate_forward layers -1", lambda c: af(c, layers=[-1]), LayerOutOfRangeError, "0-2"),
    ("ablate_forward site", lambda c: af(c, site="x"), UnknownSiteError, "resid"),
    ("forward empty", lambda c: P.forward(c.h, []), EmptyInputError, "at least one ForcedInput"),
    ("forward str", lambda c: P.forward(c.h, "abc"), WrongTypeError, "ForcedInput"),
    ("forward None", lambda c: P.forward(c.h, None), WrongTypeError, "ForcedInput"),
    ("forward list of str", lambda c: P.forward(c.h, ["a"]), WrongTypeError, "ForcedInput"),
    ("forward guidance str", lambda c: P.forward(c.h, c.src, guidance_scale="x"), WrongTypeError,
     "guidance_scale"),
    ("record_forward one pair", lambda c: P.record_forward(c.h, c.src, ("resid", 1)), WrongTypeError,
     r"\(site, layer\) pair"),
    ("record_forward empty", lambda c: P.record_forward(c.h, c.src, []), EmptyInputError, "record nothing"),
    ("record_forward None", lambda c: P.record_forward(c.h, c.src, None), WrongTypeError, "keys=None"),
    ("record_forward bad layer", lambda c: P.record_forward(c.h, c.src, [("resid", 99)]), LayerOutOfRangeError,
     "0-2"),
    ("code_logprob shape", lambda c: P.code_logprob(c.h, torch.zeros(3, 3), c.src), WrongTypeError, "logits"),
    ("code_logprob numpy", lambda c: P.code_logprob(c.h, np.zeros((4, c.n, 64)), c.src), WrongTypeError, "logits"),
    ("code_logprob positions", lambda c: P.code_logprob(c.h, torch.zeros(4, 3, 64), c.src), BadInputError,
     "logits have shape"),
    ("codes list of ints", lambda c: P.forward(c.h, P.ForcedInput([[1, 2, 3]])), BadInputError, "codebooks"),
    ("codes 1-D", lambda c: P.ForcedInput(torch.tensor([1, 2, 3])), WrongTypeError, "n_codebooks, frames"),
    ("codes too large", lambda c: P.forward(c.h, P.ForcedInput(c.src.codes + 10_000)), OutOfRangeError,
     "codebooks have 64 codes"),
    ("codes negative", lambda c: P.ForcedInput(c.src.codes - 10_000), OutOfRangeError, "negative"),
    ("codes float", lambda c: P.ForcedInput(c.src.codes.float()), WrongTypeError, "integer codes"),
    ("codes bool", lambda c: P.ForcedInput(c.src.codes > 3), WrongTypeError, "integer codes"),
    ("codes str", lambda c: P.ForcedInput("abc"), WrongTypeError, "codes"),
    ("codes ragged", lambda c: P.ForcedInput([[1, 2], [3]]), WrongTypeError, "rectangular"),
    ("codes wrong codebooks", lambda c: P.forward(c.h, P.ForcedInput(c.src.codes[:2])), BadInputError,
     "2 codebooks but this model reads 4"),
    ("codes huge unsigned", lambda c: P.ForcedInput(np.full((4, 8), 2 ** 64 - 1, np.uint64)), OutOfRangeError,
     "negative"),
    ("codes object", lambda c: P.ForcedInput(np.array([[1, None]], dtype=object)), WrongTypeError, "rectangular"),
    ("codes no frames", lambda c: P.ForcedInput(c.src.codes[:, :0]), EmptyInputError, "no frames"),
    ("codes too short", lambda c: P.forward(c.h, P.ForcedInput(c.src.codes[:, :1])), DurationError, "frames"),
    ("prompt int", lambda c: P.ForcedInput(c.src.codes, 123), WrongTypeError, "prompt=123"),
    ("of prompt int", lambda c: P.ForcedInput.of(c.h, c.src.codes, prompt=5), WrongTypeError, "prompt"),
    ("of handle None", lambda c: P.ForcedInput.of(None, c.src.codes), WrongTypeError, "not a loaded model"),
    ("windows n str", lambda c: P.windows("10", 3), WrongTypeError, "n='10'"),
    ("windows n negative", lambda c: P.windows(-3, 1), OutOfRangeError, "n=-3"),
    ("windows too many", lambda c: P.windows(3, 5), OutOfRangeError, "at most 3"),
    ("windows count str", lambda c: P.windows(10, "3"), WrongTypeError, "windows='3'"),
    ("sweep same input", lambda c: P.patching_sweep(c.h, c.src, P.ForcedInput(c.src.codes.clone(), c.src.prompt)),
     BadInputError, "same input"),
    ("gsweep same prompt", lambda c: P.patching_sweep(c.h, "jazz", "jazz", P.PatchSweep("generate")), BadInputError,
     "same input"),
    ("sweep layers str", lambda c: sweep(c, layers="12"), WrongTypeError, "layers='12' is a string"),
    ("sweep layers empty", lambda c: sweep(c, layers=[]), EmptyInputError, "layers is empty"),
    ("sweep layers 99", lambda c: sweep(c, layers=[0, 99]), LayerOutOfRangeError, "0-2"),
    ("sweep sites None", lambda c: sweep(c, sites=None), UnknownSiteError, "resid"),
    ("sweep sites empty", lambda c: sweep(c, sites=[]), EmptyInputError, "sites"),
    ("sweep sites typo", lambda c: sweep(c, sites=["resid", "mpl"]), UnknownSiteError, "mpl"),
    ("sweep mode", lambda c: sweep(c, mode="fwd"), UnknownOptionError, "mode"),
    ("sweep metric None", lambda c: sweep(c, metric=None), BadInputError, "logprob"),
    ("sweep metric judge", lambda c: sweep(c, metric="judge"), BadInputError, "logprob"),
    ("sweep stop not callable", lambda c: sweep(c, stop=True), WrongTypeError, "stop=True is not callable"),
    ("sweep guidance nan", lambda c: sweep(c, guidance_scale=float("nan")), NotFiniteError, "guidance_scale"),
    ("sweep rows", lambda c: sweep(c, rows="x"), UnknownOptionError, "rows"),
    ("sweep progress str", lambda c: sweep(c, progress="no"), WrongTypeError, "progress='no'"),
    ("sweep label list", lambda c: sweep(c, label=["jazz"]), WrongTypeError, "label"),
    ("sweep probe layer 99", lambda c: sweep(c, metric=P.ProbeMetric(None, 99, "a")), LayerOutOfRangeError, "0-2"),
    ("sweep probe unfitted", lambda c: sweep(c, metric=P.ProbeMetric(object(), 1, "a")), WrongTypeError,
     "fitted probe"),
    ("probe metric layer str", lambda c: P.ProbeMetric(None, "1", "a"), WrongTypeError, "layer"),
    ("probe metric site", lambda c: P.ProbeMetric(None, 1, "a", site="x"), UnknownSiteError, "resid"),
    ("gsweep prompts list", lambda c: P.patching_sweep(c.h, ["a"], ["b"], P.PatchSweep("generate")), WrongTypeError,
     "prompt string"),
    ("gsweep forced inputs", lambda c: P.patching_sweep(c.h, c.src, c.tgt, P.PatchSweep("generate")),
     WrongTypeError, "prompt string"),
    ("gsweep seed str", lambda c: gsweep(c, seed="1"), WrongTypeError, "seeds='1'"),
    ("gsweep seed list", lambda c: gsweep(c, seed=[1, 2]), BadInputError, r"seeds=\(1, 2\): .*pass one int"),
    ("gsweep seed huge", lambda c: gsweep(c, seed=2 ** 70), OutOfRangeError, "seed"),
    ("gsweep duration nan", lambda c: gsweep(c, duration_s=float("nan")), NotFiniteError, "duration_s"),
    ("gsweep duration str", lambda c: gsweep(c, duration_s="2"), WrongTypeError, "duration_s"),
    ("gsweep duration 0", lambda c: gsweep(c, duration_s=0), BadInputError, "duration_s=0 must be positive"),
    ("gsweep duration too short", lambda c: gsweep(c, duration_s=0.001), DurationError, "too short"),
    ("gsweep duration huge", lambda c: gsweep(c, duration_s=1e6), DurationError, "beyond"),
    ("gsweep guidance str", lambda c: gsweep(c, guidance_scale="3"), WrongTypeError, "guidance_scale"),
    ("gsweep metric str", lambda c: gsweep(c, metric="logprob"), BadInputError, "judge"),
    ("gsweep judge without label", lambda c: gsweep(c, metric="judge"), BadInputError, "label"),
    ("gsweep prompt too long", lambda c: P.patching_sweep(c.h, "x" * 50_000, "b", P.PatchSweep("generate")),
     BadInputError, "characters"),
    ("generate_patched prompt None", lambda c: P.generate_patched(c.h, None, "b", P.PatchSpec(1), SHORT),
     WrongTypeError, "source_prompt=None"),
    ("generate_patched prompt list", lambda c: P.generate_patched(c.h, "a", ["b"], P.PatchSpec(1), SHORT),
     WrongTypeError, "target_prompt"),
    ("generate_patched guidance str", lambda c: gp(c, guidance_scale="3"), WrongTypeError, "guidance_scale"),
    ("generate_patched temperature nan", lambda c: gp(c, temperature=float("nan")), NotFiniteError, "temperature"),
    ("generate_patched top_k 0", lambda c: gp(c, top_k=0), OutOfRangeError, "top_k"),
    ("generate_patched layer 99", lambda c: gp(c, layer=99), LayerOutOfRangeError, "0-2"),
    ("generate_patched rows unguided", lambda c: gp(c, guidance_scale=None), BadInputError, "guidance"),
    ("generate_ablated layers np scalar str", lambda c: ga(c, layers="1"), WrongTypeError, "layers='1'"),
    ("generate_ablated value inf", lambda c: ga(c, value=float("inf")), NotFiniteError, "value"),
    ("generate_ablated seed bool", lambda c: ga(c, seed=True), WrongTypeError, "bool"),
    ("ablation_sweep inp None", lambda c: P.ablation_sweep(c.h, None, c.v), WrongTypeError, "ForcedInput"),
    ("ablation_sweep layers np array 2-D", lambda c: asweep(c, layers=np.zeros((2, 2), int)), WrongTypeError,
     "2-D"),
    ("ablation_sweep value nan", lambda c: asweep(c, value=float("nan")), NotFiniteError, "value"),
    ("ablation_sweep site", lambda c: asweep(c, site="x"), UnknownSiteError, "resid"),
    ("trace_steps handle str", lambda c: S.trace_steps("tiny", ["jazz"], c.v), WrongTypeError,
     "not a loaded model"),
    ("trace_steps layers empty", lambda c: trace(c, layers=[]), EmptyInputError, "layers is empty"),
    ("trace_steps layers str", lambda c: trace(c, layers="12"), WrongTypeError, "layers='12' is a string"),
    ("trace_steps layers 99", lambda c: trace(c, layers=[99]), LayerOutOfRangeError, "0-2"),
    ("trace_steps guidance str", lambda c: trace(c, guidance_scale="3"), WrongTypeError, "guidance_scale"),
    ("trace_steps guidance inf", lambda c: trace(c, guidance_scale=float("inf")), NotFiniteError, "guidance"),
    ("trace_steps rows", lambda c: trace(c, rows="both"), UnknownOptionError, "rows"),
    ("trace_steps prompts empty", lambda c: S.trace_steps(c.h, [], c.v, SHORT), EmptyInputError, "prompts"),
    ("trace_steps prompts None", lambda c: S.trace_steps(c.h, None, c.v, SHORT), WrongTypeError, "prompts"),
    ("trace_steps settings str", lambda c: S.trace_steps(c.h, ["jazz"], c.v, "fast"), WrongTypeError,
     "not a GenerationSettings"),
    ("trace_steps seeds str", lambda c: trace(c, seeds="12"), WrongTypeError, "seeds='12'"),
    ("trace_steps batch_size 0", lambda c: trace(c, batch_size=0), OutOfRangeError, "batch_size"),
    ("trace_steps steering str", lambda c: trace(c, steering="x"), WrongTypeError, "SteeringSpec"),
    ("trace_steered steering str", lambda c: S.trace_steered(c.h, ["jazz"], c.v, "x", settings=SHORT),
     WrongTypeError, "SteeringSpec"),
    ("trace_steered steering of another model",
     lambda c: S.trace_steered(c.h, ["jazz"], c.v, wb.SteeringSpec.single(c.other, (1,), 1.0), settings=SHORT),
     DirectionMismatchError, "made on model"),
    ("trace_steered steering layer 99",
     lambda c: S.trace_steered(c.h, ["jazz"], c.v, wb.SteeringSpec.single(c.v, (99,), 1.0), settings=SHORT),
     LayerOutOfRangeError, "0-2"),
    ("StepTrace projection str", lambda c: trace_of(projection="x"), WrongTypeError, "projection"),
    ("StepTrace projection 2-D", lambda c: trace_of(projection=np.zeros((3, 4))), WrongTypeError, "projection"),
    ("StepTrace shapes differ", lambda c: trace_of(norm=np.ones((3, 5, 1))), BadInputError, "differ"),
    ("StepTrace layers count", lambda c: trace_of(layers=(0, 1)), BadInputError, "one layer index per row"),
    ("StepTrace layers str", lambda c: trace_of(layers="012"), WrongTypeError, "layers='012' is a string"),
    ("StepTrace clips None", lambda c: trace_of(clips=None), BadInputError, "clips"),
    ("StepTrace clips count", lambda c: trace_of(clips=[]), BadInputError, "1 clips"),
    ("StepTrace frame rate 0", lambda c: trace_of(frame_rate_hz=0), OutOfRangeError, "frame_rate_hz"),
    ("StepTrace frame rate nan", lambda c: trace_of(frame_rate_hz=float("nan")), NotFiniteError, "frame_rate_hz"),
    ("StepTrace site", lambda c: trace_of(site="x"), UnknownSiteError, "resid"),
    ("StepTrace rows", lambda c: trace_of(rows="both"), UnknownOptionError, "rows"),
    ("trace_steered unknown argument",
     lambda c: S.trace_steered(c.h, ["jazz"], c.v, wb.SteeringSpec.single(c.v, (1,), 1.0), duration=0.2),
     WrongTypeError, "duration"),
]


@pytest.mark.parametrize("call,error,match", [case[1:] for case in BAD_ARGS], ids=[case[0] for case in BAD_ARGS])
def test_a_bad_argument_is_refused_before_any_work(c, no_work, call, error, match):
    with pytest.raises(error, match=match):
        call(c)


@pytest.mark.parametrize("returned,error", [("x", WrongTypeError), (None, WrongTypeError), ([0.5], WrongTypeError),
                                            (float("nan"), NotFiniteError), (True, WrongTypeError)])
def test_a_custom_metric_that_returns_no_number_is_named(c, returned, error):
    def judge_of_mine(clip):
        return returned
    with pytest.raises(error, match="metric 'judge_of_mine' returned"):
        gsweep(c, metric=judge_of_mine)
    with pytest.raises(error, match="metric 'judge_of_mine' returned"):
        gasweep(c, metric=judge_of_mine)


def test_valid_edge_inputs_still_work(c):
    n = c.n
    plain = P.forward(c.h, c.tgt).logits
    full = pf(c, window=(0, n)).logits
    torch.testing.assert_close(full, pf(c).logits)          # (0, n) is the whole run, as None is
    assert not torch.equal(pf(c, window=np.array([n - 1, n])).logits, plain)  # the last position, as an array
    pf(c, window=(np.int64(0), 2.0), direction=torch.as_tensor(c.v))         # numpy ints, whole floats, tensors
    pf(c, direction=c.mine)                                                   # a Direction of this model
    pf(c, direction=c.other.vector)                                           # a raw vector transfers on purpose
    pf(c, direction=c.v[None, :], edits=None)                                 # (1, hidden) and no edits
    for scale in (1e300, 1e-320):                                             # normalised without overflow
        pf(c, direction=np.full(c.h.hidden_size, scale))
    af(c, layers=np.int64(1), value=np.float32(2.0))
    for codes in (c.tgt.codes.numpy().astype(np.uint16), c.tgt.codes.to(torch.uint8), c.tgt.codes.tolist()):
        torch.testing.assert_close(P.forward(c.h, P.ForcedInput(codes, c.tgt.prompt)).logits, plain)
    df = sweep(c, layers=np.array([0, 2]), windows=[(0, 2), np.array([2, n])], sites="resid")
    assert df[["layer", "start", "stop"]].values.tolist() == [[0, 0, 2], [0, 2, n], [2, 0, 2], [2, 2, n]]
    assert len(asweep(c, windows=np.int64(2), direction=c.mine)) == 2
    tr = trace(c, layers=np.int64(1), direction=c.mine, guidance_scale=np.float64(3.0))
    assert tr.layers == (1,) and np.isfinite(tr.projection).all()


JUNK = [None, True, False, "x", "12", "", b"ab", -1, 0, 10 ** 30, 2.5, float("nan"), float("-inf"), [], [[]], [None],
        (1, 2, 3), {}, {"a": 1}, object(), np.array([np.nan]), np.zeros((2, 2)), torch.zeros(2, 2), np.int64(-3), set(),
        1j, slice(1), Ellipsis]


def _fuzzed(c):
    """(name, function, valid keyword arguments, further arguments to try junk in). The spec, sweep and
    settings fields are tried through the helpers above, which build the config objects from keywords."""
    v, spec = c.v, wb.SteeringSpec.single(c.v, (1,), 1.0)
    gen = {"metric": lambda clip: 0.5, "layers": [0], "windows": 1, "duration_s": 0.2}
    settings_fields = ["seed", "guidance_scale", "temperature", "top_k", "duration_s"]
    return [
        ("forward", P.forward, dict(handle=c.h, inputs=c.src, edits=(), guidance_scale=None), []),
        ("code_logprob", P.code_logprob, dict(handle=c.h, logits=torch.zeros(4, c.n, 64), inp=c.src), []),
        ("record_forward", P.record_forward, dict(handle=c.h, inp=c.src, keys=[("resid", 0)], guidance_scale=None),
         []),
        ("patch_forward", P.patch_forward, dict(handle=c.h, source=c.src, target=c.tgt, spec=P.PatchSpec(1)),
         ["guidance_scale", "edits", "source_acts"]),
        ("PatchSpec in patch_forward", lambda **kw: pf(c, **kw), dict(layer=1),
         ["window", "direction", "rows", "site"]),
        ("ablate_forward", P.ablate_forward, dict(handle=c.h, inp=c.tgt, spec=P.AblationSpec(v, [1])),
         ["guidance_scale", "edits"]),
        ("AblationSpec in ablate_forward", lambda **kw: af(c, **kw), dict(direction=v, layers=[1]),
         ["window", "value", "rows", "site"]),
        ("generate_patched", P.generate_patched, dict(handle=c.h, source_prompt="a", target_prompt="b",
                                                      spec=P.PatchSpec(1), settings=SHORT), []),
        ("PatchSpec and settings in generate_patched", lambda **kw: gp(c, **kw), dict(layer=1),
         ["window", "direction", "rows", "site", *settings_fields]),
        ("generate_ablated", P.generate_ablated, dict(handle=c.h, prompt="a", spec=P.AblationSpec(v, [1]),
                                                      settings=SHORT), []),
        ("AblationSpec and settings in generate_ablated", lambda **kw: ga(c, **kw), dict(direction=v, layers=[1]),
         ["window", "value", "rows", "site", *settings_fields]),
        ("patching_sweep", P.patching_sweep, dict(handle=c.h, source=c.src, target=c.tgt,
                                                  sweep=P.PatchSweep(layers=[0], windows=1)),
         ["settings", "stop", "progress"]),
        ("PatchSweep in patching_sweep", lambda **kw: sweep(c, **kw), dict(layers=[0], windows=1),
         ["sites", "direction", "metric", "rows", "label", "guidance_scale", "mode"]),
        ("PatchSweep generate", lambda **kw: gsweep(c, **kw), dict(gen),
         ["sites", "direction", "rows", "label", *settings_fields, "stop"]),
        ("ablation_sweep", P.ablation_sweep, dict(handle=c.h, inp=c.tgt, direction=v,
                                                  sweep=P.AblationSweep(layers=[0], windows=1)),
         ["settings", "progress"]),
        ("AblationSweep in ablation_sweep", lambda **kw: asweep(c, **kw), dict(direction=v, layers=[0], windows=1),
         ["site", "value", "metric", "rows", "label", "guidance_scale", "mode"]),
        ("AblationSweep generate", lambda **kw: gasweep(c, **kw), dict(gen, direction=v),
         ["site", "value", "rows", "label", *settings_fields]),
        ("PatchSpec", P.PatchSpec, dict(layer=1, site="resid", window=None, direction=None, rows=None), []),
        ("AblationSpec", P.AblationSpec, dict(direction=v, layers=[1], site="resid", window=None, value=None,
                                              rows=None), []),
        ("PatchSweep", P.PatchSweep, dict(mode="forward", sites=("resid",), layers=None, windows=8, direction=None,
                                          rows=None, metric="logprob", label=None), []),
        ("AblationSweep", P.AblationSweep, dict(mode="forward", site="resid", layers=None, windows=8, value=None,
                                                rows=None, metric="logprob", label=None), []),
        ("windows", P.windows, dict(n=10, n_windows=2), []),
        ("ForcedInput", P.ForcedInput, dict(codes=c.src.codes, prompt="x", label=None), []),
        ("ForcedInput.of", P.ForcedInput.of, dict(handle=c.h, item=c.src.codes, prompt="from clip", label=None), []),
        ("ProbeMetric", P.ProbeMetric, dict(probe=None, layer=1, label="a", site="resid"), []),
        ("trace_steps", S.trace_steps, dict(handle=c.h, prompts=["a"], direction=v, settings=SHORT),
         ["site", "layers", "steering", "rows"]),
        ("settings in trace_steps", lambda **kw: trace(c, **kw), dict(direction=v),
         ["seeds", "guidance_scale", "batch_size", "temperature", "top_k", "duration_s"]),
        ("trace_steered", S.trace_steered, dict(handle=c.h, prompts=["a"], direction=v, steering=spec,
                                                settings=SHORT), ["layers", "rows"]),
        ("StepTrace", S.StepTrace, dict(projection=np.zeros((3, 4, 1)), norm=np.ones((3, 4, 1)), clips=[None],
                                        layers=(0, 1, 2), site="resid", frame_rate_hz=50.0, rows="cond"), []),
    ]


def test_no_public_function_answers_with_a_raw_error(c, no_work):
    """Junk in every argument of every entry point: each answer is a workbench error, or the call gets as far
    as running the model (which `no_work` stops) because the value was a valid one."""
    raw = []
    for name, function, valid, more in _fuzzed(c):
        for arg in [*valid, *more]:
            for value in JUNK:
                try:
                    function(**{**valid, arg: value})
                except (WorkbenchError, AssertionError):
                    pass
                except Exception as e:  # noqa: BLE001 - the point of the test
                    raw.append(f"{name}({arg}={value!r:.30}): {type(e).__name__}: {e}")
    assert not raw, "\n".join(raw)


def test_the_validation_checks_behind_them():
    from workbench import validation
    assert validation.window(np.array([2, 5]), 5) == (2, 5)
    assert validation.window((np.int64(0), 3.0), 5, unit="decoder steps") == (0, 3)
    with pytest.raises(OutOfRangeError, match=r"beyond the run's 5 decoder steps \(0-4\)"):
        validation.window((0, 6), 5, unit="decoder steps")
    unit = validation.unit_direction(Direction(np.array([3.0, 4.0]), "m", 0), 2, model_id="m")
    assert unit.dtype == np.float32 and np.allclose(unit, [0.6, 0.8])
    assert np.allclose(validation.unit_direction(torch.tensor([[0.0], [2.0]]), 2), [0, 1])  # (hidden, 1) tensor
    with pytest.raises(DirectionMismatchError, match="pass the raw vector"):
        validation.unit_direction(Direction(np.ones(2), "other", 0), 2, model_id="m")
    with pytest.raises(ZeroNormError, match="my hint"):
        validation.unit_direction(np.zeros(2), 2, zero_hint="my hint")
    with pytest.raises(WrongTypeError, match="not a loaded model"):
        validation.model_handle("facebook/musicgen-small")

"""`FrameStream` (the SAEs' training source) as a hostile user tries it: every bad argument of the constructor
and of each method is a workbench error that names the fix, checked before any work; damaged frame files are
a CorruptFileError naming the file; valid input keeps its exact behaviour."""
from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.data.frames import FrameBatch, FrameStream
from workbench.data.store import ActivationStore, StoreIdentity
from workbench.errors import (
    CorruptFileError,
    EmptyInputError,
    NotFiniteError,
    OutOfRangeError,
    UnknownSiteError,
    WorkbenchError,
    WrongTypeError,
)

HIDDEN, LENGTHS = 4, (3, 5, 2, 4)  # rows 0-1 in shard 0, rows 2-3 in shard 1: 14 frames


def make_store(path, per_step=True):
    """Two shards of two rows; per-step frames of resid 1 (row i's frames hold i + 1); resid 2 pooled only."""
    s = ActivationStore.create(path, StoreIdentity("m", "k", keys=[("resid", 1), ("resid", 2)],
                                                    per_step_keys=[("resid", 1)] if per_step else []))
    for shard in range(2):
        rows = range(2 * shard, 2 * shard + 2)
        steps = {("resid", 1): [np.full((LENGTHS[i], HIDDEN), i + 1, np.float32) for i in rows]} if per_step else None
        s.append({("resid", 1): np.zeros((2, HIDDEN)), ("resid", 2): np.zeros((2, HIDDEN))},
                 [{"id": f"r{i}"} for i in rows], steps=steps)
    return s


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("frames"))


@pytest.fixture(scope="module")
def stream(store):
    return FrameStream(store, "resid", 1, batch_size=4, seed=0)


def refuses(error, match, call):
    with pytest.raises(error, match=match) as caught:
        call()
    assert isinstance(caught.value, WorkbenchError)
    return caught.value


# ----- the constructor ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(layer="x"), WrongTypeError, "layer='x' is a str: pass an int"),
    (dict(layer=None), WrongTypeError, "layer=None"),
    (dict(layer=True), WrongTypeError, "layer=True is a bool"),
    (dict(layer=1.5), WrongTypeError, "not a whole number"),
    (dict(layer=float("nan")), NotFiniteError, "layer=nan is not finite"),
    (dict(layer=-1), OutOfRangeError, "layer=-1 is negative"),
    (dict(layer=2), WorkbenchError, r"no per-step frames of \('resid', 2\).*per_step_layers=\(2,\)"),
    (dict(layer=10 ** 30), WorkbenchError, r"per_step_layers=\(1000000000000000000000000000000,\)"),
    (dict(site="x"), UnknownSiteError, r"unknown site 'x': use one of \('resid', 'attn', 'mlp'\)"),
    (dict(site=None), UnknownSiteError, "unknown site None"),
    (dict(site=["resid"]), UnknownSiteError, "unknown site"),
    (dict(site="mlp"), WorkbenchError, r"no per-step frames of \('mlp', 1\).*it has \[\('resid', 1\)\]"),
    (dict(batch_size="x"), WrongTypeError, "batch_size='x' is a str: pass an int"),
    (dict(batch_size=float("nan")), NotFiniteError, "batch_size=nan is not finite"),
    (dict(batch_size=float("inf")), NotFiniteError, "batch_size=inf is not finite"),
    (dict(batch_size=0), OutOfRangeError, "batch_size=0 must be at least 1"),
    (dict(batch_size=-5), OutOfRangeError, "batch_size=-5 must be at least 1"),
    (dict(batch_size=2.5), WrongTypeError, "not a whole number"),
    (dict(batch_size=True), WrongTypeError, "batch_size=True is a bool"),
    (dict(batch_size=None), WrongTypeError, "batch_size=None"),
    (dict(seed="x"), WrongTypeError, "seed='x' is a str: pass an int"),
    (dict(seed=None), WrongTypeError, "seed=None"),
    (dict(seed=-1), OutOfRangeError, "seed=-1 is negative"),
    (dict(seed=0.5), WrongTypeError, "not a whole number"),
    (dict(seed=False), WrongTypeError, "seed=False is a bool"),
    (dict(rows=[0.5]), WrongTypeError, r"rows\[0\]=0.5 is not a whole number"),
    (dict(rows=["0"]), WrongTypeError, r"rows\[0\]='0' is a str"),
    (dict(rows="12"), WrongTypeError, "rows='12' is a string: pass a list of store rows"),
    (dict(rows=[True, False]), WrongTypeError, r"rows\[0\]=True is a bool"),
    (dict(rows=np.array([True, False, True, False])), WrongTypeError, r"boolean mask.*np.flatnonzero"),
    (dict(rows=[[0, 1]]), WrongTypeError, r"rows\[0\]=\[0, 1\] is a list"),
    (dict(rows=np.array([[0, 1]])), WrongTypeError, "rows is a 2-D array"),
    (dict(rows=np.array([0.0, 1.5])), WrongTypeError, "rows holds float64 values"),
    (dict(rows={0: 1}), WrongTypeError, "rows is a dict"),
    (dict(rows=object()), WrongTypeError, "rows=<object .* is a object"),
    (dict(rows=[]), EmptyInputError, "rows is empty: pass at least one"),
    (dict(rows=np.array([], np.int64)), EmptyInputError, "rows is empty"),
    (dict(rows=[99]), OutOfRangeError, r"rows must lie in 0\.\.3 \(the store's rows\): rows\[0\]=99"),
    (dict(rows=[-1]), OutOfRangeError, r"rows must lie in 0\.\.3 .*rows\[0\]=-1"),
    (dict(rows=np.array([0, 7])), OutOfRangeError, r"rows must lie in 0\.\.3 .*rows\[1\]=7"),
    (dict(rows=[float("nan")]), NotFiniteError, r"rows\[0\]=nan is not finite"),
    (dict(frame_rate_hz=float("nan")), NotFiniteError, "frame_rate_hz=nan is not finite"),
    (dict(frame_rate_hz=float("inf")), NotFiniteError, "frame_rate_hz=inf is not finite"),
    (dict(frame_rate_hz=0), OutOfRangeError, "frame_rate_hz=0 is out of range: pass a number > 0"),
    (dict(frame_rate_hz=-50), OutOfRangeError, "frame_rate_hz=-50 is out of range"),
    (dict(frame_rate_hz="50"), WrongTypeError, "frame_rate_hz='50' is a str: pass a number"),
    (dict(frame_rate_hz=None), WrongTypeError, "frame_rate_hz=None"),
    (dict(frame_rate_hz=True), WrongTypeError, "frame_rate_hz=True is a bool"),
])
def test_constructor_refuses_bad_arguments(store, kwargs, error, match):
    args = dict(site="resid", layer=1)
    args.update(kwargs)
    refuses(error, match, lambda: FrameStream(store, **args))


@pytest.mark.parametrize("bad, match", [
    (None, r"store=None: pass an ActivationStore, e\.g\. FrameStream\(ActivationStore\(path\), 'resid', layer\)"),
    ("some/folder", r"store='some/folder' is a str: pass an ActivationStore"),
    ({}, "store={} is a dict: pass an ActivationStore"),
    (np.zeros((3, 4)), "is a ndarray: pass an ActivationStore"),
])
def test_constructor_refuses_what_is_not_a_store(bad, match):
    refuses(WrongTypeError, match, lambda: FrameStream(bad, "resid", 1))


def test_a_store_without_per_step_frames_or_rows(tmp_path):
    pooled_only = make_store(tmp_path / "pooled", per_step=False)
    refuses(WorkbenchError, r"no per-step frames of \('resid', 1\) \(it has none\).*per_step_layers=\(1,\)",
            lambda: FrameStream(pooled_only, "resid", 1))
    empty = ActivationStore.create(tmp_path / "empty", StoreIdentity("m", "k", keys=[("resid", 1)],
                                                                     per_step_keys=[("resid", 1)]))
    refuses(EmptyInputError, "the store has no rows yet: collect into it first", lambda: FrameStream(empty, "resid", 1))


# ----- the methods ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, error, match", [
    (lambda fs: fs.clip("x"), WrongTypeError, "row='x' is a str: pass an int"),
    (lambda fs: fs.clip(None), WrongTypeError, "row=None"),
    (lambda fs: fs.clip(1.5), WrongTypeError, "row=1.5 is not a whole number"),
    (lambda fs: fs.clip(True), WrongTypeError, "row=True is a bool"),
    (lambda fs: fs.clip([0]), WrongTypeError, r"row=\[0\] is a list"),
    (lambda fs: fs.clip(-1), OutOfRangeError, r"row=-1 is out of range: the store has rows 0-3"),
    (lambda fs: fs.clip(99), OutOfRangeError, r"row=99 is out of range: the store has rows 0-3"),
    (lambda fs: fs.sample(-1), OutOfRangeError, "n=-1 must be at least 1"),
    (lambda fs: fs.sample(0), OutOfRangeError, "n=0 must be at least 1"),
    (lambda fs: fs.sample("x"), WrongTypeError, "n='x' is a str"),
    (lambda fs: fs.sample(2.5), WrongTypeError, "n=2.5 is not a whole number"),
    (lambda fs: fs.sample(float("inf")), NotFiniteError, "n=inf is not finite"),
    (lambda fs: fs.sample(None), WrongTypeError, "n=None"),
    (lambda fs: fs.sample(3, seed=-1), OutOfRangeError, "seed=-1 is negative"),
    (lambda fs: fs.sample(3, seed="s"), WrongTypeError, "seed='s' is a str"),
    (lambda fs: fs.sample(3, seed=1.5), WrongTypeError, "seed=1.5 is not a whole number"),
    (lambda fs: fs.batches("x"), WrongTypeError, "epoch='x' is a str"),
    (lambda fs: fs.batches(-1), OutOfRangeError, "epoch=-1 is negative"),
    (lambda fs: fs.batches(None), WrongTypeError, "epoch=None"),
    (lambda fs: fs.batches(0.5), WrongTypeError, "epoch=0.5 is not a whole number"),
    (lambda fs: fs.batches(0, start="1"), WrongTypeError, "start='1' is a str"),
    (lambda fs: fs.batches(0, start=-1), OutOfRangeError, "start=-1 is negative"),
    (lambda fs: fs.batches(0, start=5), OutOfRangeError, r"start=5 is beyond the epoch's 4 batches: pass 0-4"),
    (lambda fs: fs.batches(0, start=True), WrongTypeError, "start=True is a bool"),
    (lambda fs: fs.order("x"), WrongTypeError, "epoch='x' is a str"),
    (lambda fs: fs.order(-1), OutOfRangeError, "epoch=-1 is negative"),
    (lambda fs: fs.order(None), WrongTypeError, "epoch=None"),
    (lambda fs: fs.order(float("nan")), NotFiniteError, "epoch=nan is not finite"),
    (lambda fs: fs.sequential(0), OutOfRangeError, "chunk=0 must be at least 1"),
    (lambda fs: fs.sequential(-8), OutOfRangeError, "chunk=-8 must be at least 1"),
    (lambda fs: fs.sequential("x"), WrongTypeError, "chunk='x' is a str"),
    (lambda fs: fs.sequential(None), WrongTypeError, "chunk=None"),
    (lambda fs: fs.sequential(2.5), WrongTypeError, "chunk=2.5 is not a whole number"),
    (lambda fs: fs.gather([99]), OutOfRangeError, r"index must lie in 0\.\.13 \(this stream's frames\): index\[0\]=99"),
    (lambda fs: fs.gather([-1]), OutOfRangeError, r"index must lie in 0\.\.13 .*index\[0\]=-1"),
    (lambda fs: fs.gather(np.array([0, 14])), OutOfRangeError, r"index\[1\]=14"),
    (lambda fs: fs.gather("x"), WrongTypeError, "index='x' is a string: pass a list of frame indices"),
    (lambda fs: fs.gather(None), WrongTypeError, "index=None"),
    (lambda fs: fs.gather(3), WrongTypeError, r"index=3 is a single number: pass a list of frame indices"),
    (lambda fs: fs.gather([0.5]), WrongTypeError, r"index\[0\]=0.5 is not a whole number"),
    (lambda fs: fs.gather(np.array([0.0, 1.0])), WrongTypeError, "index holds float64 values"),
    (lambda fs: fs.gather(np.ones(14, bool)), WrongTypeError, r"boolean mask.*np.flatnonzero"),
    (lambda fs: fs.gather(np.zeros((2, 2), np.int64)), WrongTypeError, "index is a 2-D array"),
    (lambda fs: fs.gather([[0, 1]]), WrongTypeError, r"index\[0\]=\[0, 1\] is a list"),
])
def test_methods_refuse_bad_arguments_before_any_work(stream, call, error, match):
    refuses(error, match, lambda: call(stream))  # generators too: refused at the call, not at the first next()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(x="x"), WrongTypeError, "x='x'.*pass a 2-D array"),
    (dict(x=np.zeros(3, np.float32)), WrongTypeError, r"x has shape \(3,\)"),
    (dict(rows=np.zeros(3, np.int32)), WrongTypeError, r"rows has shape \(3,\) but x has 2 frames"),
    (dict(times_s=None), WrongTypeError, "times_s=None"),
])
def test_frame_batch_refuses_mismatched_fields(kwargs, error, match):
    fields = dict(x=np.zeros((2, HIDDEN), np.float32), rows=np.zeros(2, np.int32), steps=np.zeros(2, np.int32),
                  times_s=np.zeros(2))
    fields.update(kwargs)
    refuses(error, match, lambda: FrameBatch(**fields))


# ----- damaged frame files ---------------------------------------------------------------------------------
def shard_file(s, shard, name):
    folder, _ = s._shard_paths()[shard]
    return folder / name


@pytest.mark.parametrize("damage, match", [
    (lambda off: off[::-1].copy(), "offsets do not start at 0"),                # reversed
    (lambda off: np.array([0, 3, 1], off.dtype), "offsets decrease"),          # a clip of negative length
    (lambda off: np.array([0, 3, 99], off.dtype), r"offsets end at 99 but the file holds 8 frames"),
])
def test_damaged_offsets_are_a_corrupt_file_error(tmp_path, damage, match):
    s = make_store(tmp_path)
    path = shard_file(s, 0, "steps.resid.1.offsets.npy")
    np.save(path, damage(np.load(path)))  # same size: the store's size check on open does not see it
    error = refuses(CorruptFileError, match, lambda: FrameStream(ActivationStore(tmp_path), "resid", 1))
    assert error.path == str(path) and "store.repair()" in str(error)


def test_frames_of_another_width_are_a_corrupt_file_error(tmp_path):
    s = make_store(tmp_path)
    path = shard_file(s, 1, "steps.resid.1.npy")
    np.save(path, np.zeros((len(np.load(path)) * 2, HIDDEN // 2), np.float32))  # same size, other width
    error = refuses(CorruptFileError, r"holds frames of width 2, but the first shard's have width 4",
                    lambda: FrameStream(ActivationStore(tmp_path), "resid", 1))
    assert error.path == str(path)


def test_frames_that_are_not_a_matrix_are_a_corrupt_file_error(tmp_path):
    s = make_store(tmp_path)
    path = shard_file(s, 0, "steps.resid.1.npy")
    np.save(path, np.zeros(len(np.load(path)) * HIDDEN, np.float32))  # same size, flattened
    refuses(CorruptFileError, r"holds an array of shape \(32,\), not \(frames, hidden\)",
            lambda: FrameStream(ActivationStore(tmp_path), "resid", 1))


# ----- valid input keeps its behaviour --------------------------------------------------------------------
def test_valid_variants_stream_as_before(store, stream):
    plain = FrameStream(store, "resid", 1, batch_size=4, seed=0)
    numpy_args = FrameStream(store, "resid", np.int64(1), batch_size=np.int64(4), seed=np.uint8(0),
                             frame_rate_hz=np.float32(50))
    whole_floats = FrameStream(store, "resid", 1.0, batch_size=4.0, seed=0.0, frame_rate_hz=50)
    for other in (numpy_args, whole_floats):
        np.testing.assert_array_equal(other.order(0), plain.order(0))
        assert other.layer == 1 and type(other.layer) is int and other.batch_size == 4 and other.seed == 0
    assert stream.n_frames == sum(LENGTHS) and len(stream) == math.ceil(sum(LENGTHS) / 4)
    for rows in ([3, 1], (1, 3), range(1, 4, 2), np.array([3, 1, 1]), np.array([1, 3], np.uint16)):
        assert sorted(set(FrameStream(store, "resid", 1, rows=rows).rows.tolist())) == [1, 3]
    assert set(FrameStream(store, "resid", 1, rows=2).rows.tolist()) == {2}  # one row as an int
    assert set(FrameStream(store, "resid", 1, rows=np.int64(2)).rows.tolist()) == {2}
    np.testing.assert_array_equal(stream.clip(np.int64(2)), np.full((2, HIDDEN), 3, np.float32))
    np.testing.assert_array_equal(stream.clip(2.0), stream.clip(2))
    assert stream.sample(10 ** 9).shape == (sum(LENGTHS), HIDDEN)  # more than there are: all of them
    assert stream.sample(3, seed=None).shape == (3, HIDDEN)  # numpy's "fresh entropy" seed stays allowed
    np.testing.assert_array_equal(stream.sample(5, seed=np.int64(7)), stream.sample(5, seed=7))
    assert stream.gather([]).shape == (0, HIDDEN) and stream.gather(np.array([], np.int64)).shape == (0, HIDDEN)
    np.testing.assert_array_equal(stream.gather((13, 0)), np.array([[4] * HIDDEN, [1] * HIDDEN], np.float32))
    assert list(stream.batches(0, start=len(stream))) == []  # a finished epoch resumes as nothing left
    assert sum(len(b.x) for b in stream.batches(np.int64(1), start=np.int64(1))) == sum(LENGTHS) - 4
    assert [len(b.x) for b in stream.sequential(10 ** 12)] == [sum(LENGTHS)]
    assert [len(b.x) for b in stream.sequential(5)] == [5, 5, 4]
    np.testing.assert_array_equal(stream.order(10 ** 20), stream.order(10 ** 20))
    huge_seed = FrameStream(store, "resid", 1, seed=2 ** 70, batch_size=10 ** 20)
    assert len(huge_seed) == 1 and sorted(huge_seed.order(0).tolist()) == list(range(sum(LENGTHS)))

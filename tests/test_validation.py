"""One validation boundary: the hostile-user inputs of issue 9 (item 2), and the checks of workbench.validation."""
import time

import numpy as np
import pytest

import workbench as wb
from workbench import validation
from workbench.errors import (
    AudioFormatError,
    BadInputError,
    DurationError,
    EmptyInputError,
    LayerOutOfRangeError,
    NotFiniteError,
    OutOfRangeError,
    PromptTooLongError,
    UnknownOptionError,
    UnknownSiteError,
    WrongTypeError,
    ZeroNormError,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = wb.CaptureSpec(layers=(1,), pooling="mean")


def noise(n, seed=0, channels=None):
    rng = np.random.RandomState(seed)
    shape = (n,) if channels is None else (channels, n)
    return (rng.randn(*shape) * 0.1).astype(np.float32)


def forced(tiny, audio, **kwargs):
    return wb.teacher_force(tiny, audio, 32000, capture=SPEC, **kwargs)[("resid", 1)]


# --- generate ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [-1, 0])
def test_generate_refuses_a_batch_size_below_one(tiny, batch_size):
    with pytest.raises(OutOfRangeError, match="batch_size=.* must be at least 1"):
        wb.generate(tiny, ["a", "b"], duration_s=0.2, batch_size=batch_size)


def test_teacher_force_and_collect_refuse_a_batch_size_below_one(tiny, tmp_path):
    with pytest.raises(OutOfRangeError, match="batch_size=-1"):
        forced(tiny, [noise(3200)], batch_size=-1)
    from workbench.data.collect import collect
    from workbench.runtime.settings import GenerationSettings
    with pytest.raises(OutOfRangeError, match="batch_size=-1"):
        collect(tiny, ["jazz"], SPEC, tmp_path / "store", GenerationSettings(batch_size=-1, duration_s=0.2),
                progress=False)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("scale,error", [(float("inf"), NotFiniteError), (float("nan"), NotFiniteError),
                                         (0.5, OutOfRangeError), (-3.0, OutOfRangeError)])
def test_generate_refuses_a_guidance_scale_that_is_not_finite_or_below_one(tiny, scale, error):
    with pytest.raises(error, match="guidance_scale.*1 or None turns classifier-free guidance off"):
        wb.generate(tiny, "x", duration_s=0.2, guidance_scale=scale)


@pytest.mark.parametrize("temperature,error", [(float("nan"), NotFiniteError), (-1.0, OutOfRangeError),
                                               (float("inf"), NotFiniteError)])
def test_generate_refuses_a_nan_or_negative_temperature(tiny, temperature, error):
    with pytest.raises(error, match="temperature.*0 for greedy"):
        wb.generate(tiny, "x", duration_s=0.2, temperature=temperature)


@pytest.mark.parametrize("top_k", [0, -5, 2.5, "250"])
def test_generate_refuses_a_top_k_below_one(tiny, top_k):
    with pytest.raises(BadInputError, match="top_k"):
        wb.generate(tiny, "x", duration_s=0.2, top_k=top_k)


def test_greedy_and_no_guidance_still_work(tiny):
    greedy = wb.generate(tiny, "x", duration_s=0.2, temperature=0, guidance_scale=None, top_k=None)
    again = wb.generate(tiny, "x", duration_s=0.2, temperature=0.0, guidance_scale=1, top_k=None, seeds=7)
    assert np.array_equal(greedy.clips[0].codes, again.clips[0].codes)  # greedy ignores the seed


def test_generate_refuses_seeds_given_as_a_string(tiny):
    with pytest.raises(WrongTypeError, match="seeds='12' is a string: pass an int"):
        wb.generate(tiny, ["a", "b"], duration_s=0.2, seeds="12")
    with pytest.raises(WrongTypeError, match="bool"):
        wb.generate(tiny, ["a"], duration_s=0.2, seeds=[True])
    with pytest.raises(WrongTypeError, match="whole number"):
        wb.generate(tiny, ["a"], duration_s=0.2, seeds=[1.5])
    res = wb.generate(tiny, ["a", "b"], duration_s=0.2, seeds=np.array([1, 2]))
    assert [c.seed for c in res.clips] == [1, 2]


@pytest.mark.parametrize("duration", [float("nan"), float("inf"), "4"])
def test_generate_refuses_a_duration_that_is_not_a_finite_number(tiny, duration):
    with pytest.raises(BadInputError, match="duration_s"):
        wb.generate(tiny, "x", duration_s=duration)


def test_a_huge_prompt_is_refused_before_tokenising(tiny, monkeypatch):
    def no_tokenising(*args, **kwargs):
        raise AssertionError("the tokenizer ran on a 50,000-character prompt")

    monkeypatch.setattr(type(tiny.processor.tokenizer), "__call__", no_tokenising)
    start = time.perf_counter()
    with pytest.raises(PromptTooLongError, match="50,000 characters.*512 tokens"):
        wb.generate(tiny, "x" * 50_000, duration_s=0.2)
    assert time.perf_counter() - start < 0.5


def test_a_prompt_over_the_token_limit_is_refused_with_its_length(tiny):
    # the tiny model's tokenizer has no limit of its own: the T5 fallback of 512 applies (one token per character)
    assert wb.runtime.inputs.max_prompt_tokens(tiny) == 512
    with pytest.raises(PromptTooLongError, match=r"prompts\[1\] is 601 tokens long but the text encoder reads at most "
                                                 "512"):
        wb.generate(tiny, ["ok", "y" * 600], duration_s=0.2)
    with pytest.raises(PromptTooLongError, match="601 tokens"):
        forced(tiny, [noise(3200)], prompts=["y" * 600])


def test_prompts_must_be_text(tiny):
    with pytest.raises(WrongTypeError, match=r"prompts\[1\]=3 is a int"):
        wb.generate(tiny, ["a", 3], duration_s=0.2)
    with pytest.raises(WrongTypeError, match="prompts=None"):
        wb.generate(tiny, None, duration_s=0.2)
    with pytest.raises(EmptyInputError):
        wb.generate(tiny, [], duration_s=0.2)


def test_specs_of_the_wrong_kind_are_refused(tiny):
    with pytest.raises(WrongTypeError, match="not a CaptureSpec"):
        wb.generate(tiny, "x", duration_s=0.2, capture=("resid", 0))
    with pytest.raises(WrongTypeError, match="not a SteeringSpec"):
        wb.generate(tiny, "x", duration_s=0.2, steering={"layers": (0,)})
    with pytest.raises(WrongTypeError, match="not callable"):
        wb.generate(tiny, "x", duration_s=0.2, stop=True)


@pytest.mark.parametrize("threads", [0, -1, "12", 1.5])
def test_thread_counts_are_checked(tiny, threads):
    with pytest.raises(BadInputError, match="threads"):
        wb.generate(tiny, "x", duration_s=0.2, threads=threads)
    with pytest.raises(BadInputError, match="threads"):
        forced(tiny, [noise(3200)], threads=threads)


def test_the_nnsight_path_runs_the_same_checks(tiny):
    from workbench.runtime.settings import GenerationSettings
    from workbench.runtime.tracing import generate_traced
    with pytest.raises(OutOfRangeError, match="got 3 seeds for 2 prompts"):
        generate_traced(tiny, ["a", "b"], GenerationSettings(duration_s=0.2, seeds=(1, 2, 3)))
    with pytest.raises(DurationError, match="beyond this model"):
        generate_traced(tiny, "x", GenerationSettings(duration_s=1e6))
    with pytest.raises(WrongTypeError, match="not a GenerationSettings"):
        generate_traced(tiny, "x", {"duration_s": 0.2})
    with pytest.raises(WrongTypeError, match="not a SteeringSpec"):
        generate_traced(tiny, "x", GenerationSettings(duration_s=0.2), steering={"layers": (0,)})


def test_an_audio_prompt_is_mixed_down_and_must_fit_with_the_continuation(tiny):
    stereo = noise(3200, channels=2)
    mixed = wb.generate(tiny, "x", duration_s=0.2, seeds=1, audio_prompt=[stereo], audio_prompt_sample_rate_hz=32000)
    mono = wb.generate(tiny, "x", duration_s=0.2, seeds=1, audio_prompt=[stereo.mean(0)],
                       audio_prompt_sample_rate_hz=32000)
    assert np.array_equal(mixed.clips[0].codes, mono.clips[0].codes)
    too_long = np.zeros(int(tiny.max_duration_s * 32000) - 3200, np.float32)
    with pytest.raises(DurationError, match="audio prompt .* plus duration_s"):
        wb.generate(tiny, "x", duration_s=0.2, audio_prompt=too_long, audio_prompt_sample_rate_hz=32000)
    with pytest.raises(BadInputError, match="audio_prompt_sample_rate_hz"):
        wb.generate(tiny, "x", duration_s=0.2, audio_prompt=stereo[0])


# --- steering ------------------------------------------------------------------------------------------------

def unit(h, seed=0):
    v = np.random.RandomState(seed).randn(h.hidden_size).astype(np.float32)
    return v / np.linalg.norm(v)


def test_a_strength_that_buries_the_residual_stream_is_refused(tiny):
    with pytest.raises(OutOfRangeError, match="norm 1e\\+30.*sqrt\\(hidden / 2\\)"):
        wb.SteeringSpec.single(unit(tiny), (0,), 1e30)
    with pytest.raises(OutOfRangeError, match="strength -20000 x direction norm 1 adds a vector of norm 2e\\+04"):
        wb.SteeringSpec.single(unit(tiny), (0,), -2e4)
    with pytest.raises(OutOfRangeError, match="ramp_to 100000 x direction norm"):  # the ramp's target is a strength too
        wb.SteeringSpec.single(unit(tiny), (0,), 1.0, schedule=wb.Schedule("ramp", ramp_to=1e5))
    with pytest.raises(OutOfRangeError, match="99%"):
        wb.SteeringSpec.single(unit(tiny), (0,), 1e3, mode="norm_relative")
    with pytest.raises(OutOfRangeError):
        wb.SteeringSpec.single(unit(tiny), (0,), 4.0).scaled(1e5)
    # a generous bound: the useful range passes
    wb.SteeringSpec.single(unit(tiny) * 100, (0,), 20.0)
    wb.SteeringSpec.single(unit(tiny), (0,), 50.0, mode="norm_relative")


@pytest.mark.parametrize("strength", [float("nan"), float("inf"), "2", True])
def test_a_strength_must_be_a_finite_number(tiny, strength):
    with pytest.raises(BadInputError, match="strength"):
        wb.SteeringSpec.single(unit(tiny), (0,), strength)


def test_a_negative_decay_rate_is_refused():
    with pytest.raises(OutOfRangeError, match="decay_rate=-0.1 is negative: the strength would grow"):
        wb.Schedule("decay", decay_rate=-0.1)
    with pytest.raises(NotFiniteError):
        wb.Schedule("decay", decay_rate=float("nan"))
    assert wb.Schedule("decay", decay_rate=0).strength_at(2.0, 50) == 2.0


def test_schedule_steps_and_periods_are_checked():
    with pytest.raises(OutOfRangeError, match="start_step=-1 is negative"):
        wb.Schedule(start_step=-1)
    with pytest.raises(WrongTypeError, match="start_step='3'"):
        wb.Schedule(start_step="3")
    with pytest.raises(OutOfRangeError, match="every=0 must be at least 1"):
        wb.Schedule("pulse", every=0)
    with pytest.raises(OutOfRangeError, match="width=-2"):
        wb.Schedule("pulse", width=-2)
    with pytest.raises(BadInputError, match="must be after start_step"):
        wb.Schedule(start_step=5, stop_step=5)
    with pytest.raises(OutOfRangeError, match="floor"):
        wb.Schedule("decay", floor=2.0)
    with pytest.raises(UnknownOptionError, match="unknown schedule 'linear'"):
        wb.Schedule("linear")
    schedule = wb.Schedule("pulse", start_step=np.int64(2), every=4.0)
    assert type(schedule.start_step) is int and schedule.every == 4  # JSON-able in clip metadata


def test_a_zero_direction_is_refused_in_norm_relative_mode(tiny):
    with pytest.raises(ZeroNormError, match="the direction has zero norm: norm_relative steering would"):
        wb.SteeringSpec.single(np.zeros(tiny.hidden_size), (0,), 2.0, mode="norm_relative")
    wb.SteeringSpec.single(np.zeros(tiny.hidden_size), (0,), 2.0)  # add mode: adding zero is harmless


def test_steering_layers_and_site_are_checked(tiny):
    with pytest.raises(WrongTypeError, match="layers='12' is a string: pass a list of ints"):
        wb.SteeringSpec.single(unit(tiny), "12", 1.0)
    with pytest.raises(UnknownSiteError, match="resid"):
        wb.SteeringSpec.single(unit(tiny), (0,), 1.0, site="ffn")
    with pytest.raises(UnknownOptionError, match="steering mode"):
        wb.SteeringSpec.single(unit(tiny), (0,), 1.0, mode="multiply")
    with pytest.raises(WrongTypeError, match="not a Schedule"):
        wb.SteeringTerm(unit(tiny), (0,), 1.0, schedule="decay")
    assert wb.SteeringSpec.single(unit(tiny), np.int64(2), 1.0).terms[0].layers == (2,)


# --- capture -------------------------------------------------------------------------------------------------

def test_capture_layers_given_as_a_string_are_refused():
    with pytest.raises(WrongTypeError, match="layers='12' is a string: pass a list of ints such as"):
        wb.CaptureSpec(layers="12")
    with pytest.raises(WrongTypeError, match=r"layers\[0\]=1.5 is not a whole number"):
        wb.CaptureSpec(layers=[1.5])
    with pytest.raises(UnknownOptionError, match="unknown pooling 'avg'"):
        wb.CaptureSpec(pooling="avg")
    with pytest.raises(UnknownOptionError, match="unknown rows"):
        wb.CaptureSpec(rows="all")
    with pytest.raises(EmptyInputError, match="sites"):
        wb.CaptureSpec(sites=())
    assert wb.CaptureSpec(layers=np.array([2, 0, 2])).layers == (0, 2)
    assert wb.CaptureSpec(layers=1, sites="mlp").key == wb.CaptureSpec(layers=(1,), sites=("mlp",)).key


def test_one_layer_check_everywhere(tiny):
    message = r"layer 3 is out of range: this model has 3 decoder layers \(0-2\)"
    with pytest.raises(LayerOutOfRangeError, match=message):
        wb.CaptureSpec(layers=(3,)).resolved_layers(tiny.n_layers)
    with pytest.raises(LayerOutOfRangeError, match=message):
        wb.SteeringSpec.single(unit(tiny), (3,), 1.0).validate_for(tiny.n_layers, tiny.hidden_size, tiny.model_id)
    with pytest.raises(LayerOutOfRangeError, match=message):
        tiny.site_path("resid", 3)
    with pytest.raises(UnknownSiteError, match="unknown site 'ffn'"):
        tiny.site_path("ffn", 0)


# --- teacher forcing -----------------------------------------------------------------------------------------

def test_teacher_force_mixes_stereo_down_instead_of_joining_the_channels(tiny):
    stereo = noise(6400, channels=2)
    mono = forced(tiny, [stereo.mean(axis=0)])
    assert np.allclose(forced(tiny, [stereo]), mono, atol=1e-6)       # channels first (2, n)
    assert np.allclose(forced(tiny, [stereo.T]), mono, atol=1e-6)     # channels last (n, 2)


def test_teacher_force_refuses_audio_longer_than_the_model_reads(tiny):
    too_long = np.zeros(int((tiny.max_duration_s + 1) * 32000), np.float32)
    with pytest.raises(DurationError, match=f"at most {tiny.max_duration_s:.2f} s: crop it"):
        forced(tiny, [too_long])


def test_teacher_force_scales_integer_pcm(tiny):
    wave = noise(6400)
    pcm16 = np.round(wave * 32767).astype(np.int16)
    assert np.allclose(forced(tiny, [pcm16]), forced(tiny, [pcm16 / 32768.0]), atol=1e-6)
    pcm8 = (np.round(wave * 127) + 128).astype(np.uint8)
    assert np.allclose(forced(tiny, [pcm8]), forced(tiny, [(pcm8 - 128.0) / 128.0]), atol=1e-6)
    with pytest.raises(AudioFormatError, match="divide by 32768"):
        forced(tiny, [pcm16.astype(np.float32)])


def test_teacher_force_takes_one_bare_array_as_one_clip(tiny):
    wave = noise(6400)
    assert np.allclose(forced(tiny, wave), forced(tiny, [wave]), atol=1e-6)
    with pytest.raises(AudioFormatError, match=r"\[array\] for one stereo clip, or list\(array\) for two"):
        forced(tiny, noise(6400, channels=2))


def test_teacher_force_refuses_a_clip_shorter_than_three_frames(tiny):
    with pytest.raises(DurationError, match="at least 3 frames = 1920 samples"):
        forced(tiny, [noise(1000)])
    with pytest.raises(DurationError, match="3 to"):
        wb.teacher_force(tiny, None, codes=[np.zeros((4, 2), np.int64)], capture=SPEC)
    assert forced(tiny, [noise(1920)]).shape == (1, tiny.hidden_size)


def test_teacher_force_refuses_audio_of_the_wrong_shape_or_type(tiny):
    with pytest.raises(AudioFormatError, match=r"shape \(4, 6400\)"):
        forced(tiny, [noise(6400, channels=4)])
    with pytest.raises(AudioFormatError, match="int64"):
        forced(tiny, [np.zeros(6400, np.int64)])
    with pytest.raises(AudioFormatError, match="single number"):
        forced(tiny, [0.0, 0.1])
    with pytest.raises(WrongTypeError, match="audio='clip.wav'"):
        forced(tiny, "clip.wav")
    with pytest.raises(BadInputError, match="sample_rate_hz="):
        wb.teacher_force(tiny, [noise(6400)])


# --- datasets ------------------------------------------------------------------------------------------------

def test_datasets_check_their_counts_and_seeds():
    from workbench.data.datasets import PromptSet, SynthSet
    with pytest.raises(WrongTypeError, match="seeds='12' is a string"):
        PromptSet(["jazz"], seeds="12")
    assert [r["seed"] for r in PromptSet(["jazz"], seeds=np.int64(3))] == [3]
    assert [r["prompt"] for r in PromptSet("jazz", templates="a {label} song")] == ["a jazz song"]
    with pytest.raises(OutOfRangeError, match="n_per_genre=0 must be at least 1"):
        SynthSet(["jazz"], n_per_genre=0)
    with pytest.raises(OutOfRangeError, match="duration_s"):
        SynthSet(["jazz"], duration_s=-1.0)
    with pytest.raises(WrongTypeError, match="n_per_genre"):
        SynthSet(["jazz"], n_per_genre="2")


def test_audio_set_checks_its_rate_and_duration(tmp_path):
    from workbench.data.datasets import AudioSet
    with pytest.raises(OutOfRangeError, match="sample_rate_hz=0"):
        AudioSet(tmp_path, sample_rate_hz=0)
    with pytest.raises(NotFiniteError, match="duration_s"):
        AudioSet(tmp_path, duration_s=float("nan"))


# --- workbench.validation ------------------------------------------------------------------------------------

def test_integers():
    assert validation.positive_int(np.int32(3), "n") == 3 and validation.positive_int(4.0, "n") == 4
    assert validation.non_negative_int(0, "step") == 0
    assert validation.integer(np.array(5), "n") == 5
    for bad, error in [(True, WrongTypeError), ("3", WrongTypeError), (None, WrongTypeError), (2.5, WrongTypeError),
                       (float("nan"), NotFiniteError)]:
        with pytest.raises(error):
            validation.positive_int(bad, "n")
    with pytest.raises(OutOfRangeError, match="n=0 must be at least 1"):
        validation.positive_int(0, "n")
    with pytest.raises(OutOfRangeError, match="step=-1 is negative"):
        validation.non_negative_int(-1, "step")
    with pytest.raises(OutOfRangeError, match="between 1 and 3"):
        validation.integer(4, "n", low=1, high=3)
    assert issubclass(WrongTypeError, TypeError) and issubclass(WrongTypeError, ValueError)


def test_finite_floats():
    assert validation.finite_float(np.float32(0.5), "x", low=0, high=1) == 0.5
    assert validation.finite_float(1, "x", low=1) == 1.0
    with pytest.raises(OutOfRangeError, match="pass a number > 0"):
        validation.finite_float(0, "x", low=0, low_inclusive=False)
    with pytest.raises(OutOfRangeError, match="< 1; the fix"):
        validation.finite_float(1, "x", high=1, high_inclusive=False, hint="the fix")
    for bad in (float("inf"), -float("inf"), float("nan"), np.float64("nan")):
        with pytest.raises(NotFiniteError):
            validation.finite_float(bad, "x")
    for bad in ("1", None, True, [1.0]):
        with pytest.raises(WrongTypeError):
            validation.finite_float(bad, "x")


def test_int_sequences():
    assert validation.int_sequence([1, np.int64(2)], "layers") == (1, 2)
    assert validation.int_sequence(range(3), "layers") == (0, 1, 2)
    assert validation.int_sequence(np.array([4, 5]), "layers") == (4, 5)
    assert validation.int_sequence(6, "layers") == (6,)
    assert validation.int_sequence((), "layers", allow_empty=True) == ()
    with pytest.raises(WrongTypeError, match=r"layers='12' is a string: pass a list of ints such as \[1, 2\]"):
        validation.int_sequence("12", "layers")
    with pytest.raises(WrongTypeError, match="single number"):
        validation.int_sequence(6, "layers", single=False)
    with pytest.raises(WrongTypeError, match=r"layers\[1\]=True is a bool"):
        validation.int_sequence([1, True], "layers")
    with pytest.raises(WrongTypeError, match="2-D array"):
        validation.int_sequence(np.zeros((2, 2), int), "layers")
    with pytest.raises(EmptyInputError):
        validation.int_sequence([], "layers")
    with pytest.raises(WrongTypeError, match="dict"):
        validation.int_sequence({1: 2}, "layers")


def test_seed_lists():
    assert validation.seed_list(None, 2) == [0, 0]
    assert validation.seed_list(np.int64(5), 3) == [5, 5, 5]
    assert validation.seed_list([1, 2], 2) == [1, 2]
    with pytest.raises(OutOfRangeError, match="got 1 seeds for 2 prompts"):
        validation.seed_list([1], 2)
    with pytest.raises(WrongTypeError, match="seeds='12' is a string"):
        validation.seed_list("12", 2)
    with pytest.raises(OutOfRangeError, match="64-bit"):
        validation.seed_list([2 ** 64], 1)


def test_choices_sites_and_layers():
    assert validation.choice("mean", "pooling", ("mean", "max")) == "mean"
    with pytest.raises(UnknownOptionError, match=r"unknown pooling 'avg': use one of \('mean', 'max'\)"):
        validation.choice("avg", "pooling", ("mean", "max"))
    with pytest.raises(UnknownOptionError):
        validation.choice(["mean"], "pooling", ("mean",))
    assert validation.sites("attn") == ("attn",) and validation.sites(["resid", "mlp"]) == ("resid", "mlp")
    with pytest.raises(UnknownSiteError):
        validation.sites(["resid", "ffn"])
    assert validation.layers_in_range((0, np.int64(2)), 3) == (0, 2)
    with pytest.raises(LayerOutOfRangeError, match=r"layer -1 is out of range: this model has 3 decoder layers"):
        validation.layer_index(-1, 3)


def test_prompt_lists():
    assert validation.prompt_list("jazz") == ["jazz"] and validation.prompt_list(("a", "")) == ["a", ""]
    with pytest.raises(EmptyInputError, match="lo-fi jazz"):
        validation.prompt_list([])
    with pytest.raises(PromptTooLongError, match="1,281 characters.*64 tokens"):
        validation.prompt_list(["x" * 1281], max_tokens=64)
    assert validation.prompt_list(["x" * 1280], max_tokens=64)


def test_sampling_settings():
    assert validation.guidance_scale(None) is None and validation.guidance_scale(3) == 3.0
    assert validation.temperature(0) == 0.0 and validation.top_k(None) is None and validation.top_k(250.0) == 250
    with pytest.raises(OutOfRangeError, match="top_k=0 keeps no codes.*None to sample from all codes"):
        validation.top_k(0)


def test_audio_mono():
    left, right = noise(100, 1), noise(100, 2)
    stereo = np.stack([left, right])
    assert np.array_equal(validation.audio_mono(stereo), (stereo.mean(axis=0)))
    assert np.array_equal(validation.audio_mono(stereo.T), stereo.mean(axis=0))
    assert np.array_equal(validation.audio_mono(left[None]), left) and np.array_equal(
        validation.audio_mono(left[:, None]), left)
    out = validation.audio_mono(left.astype(np.float64))
    assert out.dtype == np.float32 and out.flags.c_contiguous and np.array_equal(out, left)
    assert validation.audio_mono(np.array([-32768, 0, 16384], np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert validation.audio_mono(np.array([-2 ** 31, 2 ** 30], np.int32)).tolist() == [-1.0, 0.5]
    assert validation.audio_mono(np.array([0, 128, 192], np.uint8)).tolist() == [-1.0, 0.0, 0.5]
    assert validation.audio_mono([0.0, 0.5]).tolist() == [0.0, 0.5]
    with pytest.raises(NotFiniteError, match="clip 3 contains NaN"):
        validation.audio_mono(np.array([0.0, np.nan]), "clip 3")
    for bad in (np.zeros((3, 100)), np.zeros((2, 2, 100)), np.zeros(10, complex), np.zeros(10, bool), [[0.0], [1, 2]]):
        with pytest.raises(AudioFormatError):
            validation.audio_mono(bad)


def test_audio_clips():
    wave = noise(100)
    assert len(validation.audio_clips(wave)) == 1 and len(validation.audio_clips([wave, wave])) == 2
    assert len(validation.audio_clips(np.zeros((100, 2)))) == 1      # one channels-last stereo clip
    assert len(validation.audio_clips(np.zeros((3, 100)))) == 3      # three mono clips, one per row
    assert len(validation.audio_clips(np.zeros((4, 2, 100)))) == 4   # four stereo clips
    with pytest.raises(AudioFormatError, match="one stereo clip or two mono clips"):
        validation.audio_clips(np.zeros((2, 100)))
    with pytest.raises(WrongTypeError):
        validation.audio_clips(None)


def test_audio_lengths():
    validation.audio_length(1920, "clip", 32000, min_samples=1920, max_samples=6400, min_frames=3)
    with pytest.raises(DurationError, match="pad it"):
        validation.audio_length(1919, "clip", 32000, min_samples=1920, max_samples=6400, min_frames=3)
    with pytest.raises(DurationError, match=r"audio\[:6400\]"):
        validation.audio_length(6401, "clip", 32000, min_samples=1920, max_samples=6400, min_frames=3)


def test_validation_is_torch_free():
    import subprocess
    import sys
    code = "import sys, workbench.validation; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0

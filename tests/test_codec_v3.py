"""Teaching codec v3 (issue 27): the comb measurement, the comb loss, the codec stage (trains, resumes
to the same weights, writes an EnCodec folder) and a round trip with less comb than v2's codec."""
import json

import numpy as np
import pytest
import torch

from workbench.frame_comb import comb_share as _comb_share
from workbench.toy.audio_checks import comb_shares, si_sdr, stft_distance


def comb_share(audio) -> float:
    return _comb_share(audio, 32000, 640)  # the teaching codec's rate and frame period


def _sine(freq_hz: float, n: int = 32000) -> np.ndarray:
    return np.sin(2 * np.pi * freq_hz * np.arange(n) / 32000)


def test_comb_share_is_the_frame_periodic_share_of_power():
    assert comb_share(_sine(100)) == pytest.approx(1.0)  # two cycles a frame: all comb
    assert comb_share(_sine(441)) < 0.01  # drifts 0.82 cycle a frame: averages away
    noise = np.random.default_rng(0).normal(size=64000)
    assert comb_share(noise) == pytest.approx(1 / 25, abs=0.01)  # 25 periods a block
    assert comb_share(noise + 5.0) == pytest.approx(comb_share(noise))  # mean removed
    frame = np.random.default_rng(1).normal(size=640)
    assert comb_share(np.tile(frame, 50) + 0.3 * noise[:32000]) > 0.9
    stereo = np.stack([_sine(100), _sine(100)])
    assert comb_share(stereo) == pytest.approx(1.0)
    assert comb_shares([_sine(100), _sine(441)]).tolist() == [comb_share(_sine(100)), comb_share(_sine(441))]
    assert comb_share(_sine(100, 6400)) == pytest.approx(1.0)  # 0.2 s, under one block: the whole clip is the block
    with pytest.raises(ValueError, match="fewer than two frame periods"):
        comb_share(np.zeros(1000))


def test_distances_to_the_clean_clip():
    clip = _sine(441) + 0.1 * _sine(1234)
    assert stft_distance(clip, clip) == pytest.approx(0.0, abs=1e-6)
    assert stft_distance(0.5 * clip, clip) > 0.1  # a level change is a distance ...
    assert si_sdr(0.5 * clip, clip) > 60  # ... but not a distortion
    assert si_sdr(clip + 0.1 * _sine(3000), clip) == pytest.approx(
        10 * np.log10(np.sum(clip ** 2) / np.sum((0.1 * _sine(3000)) ** 2)), abs=0.1)


def test_frame_comb_loss_penalises_a_frame_periodic_error_only():
    from workbench.toy.training.codec_training import codec_loss, frame_comb_loss, spectral_loss

    target = torch.from_numpy(_sine(441, 10240)).float()[None, None]
    hum = torch.from_numpy(np.tile(np.random.default_rng(0).normal(size=640), 16)).float()[None, None]
    assert frame_comb_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    with_hum = frame_comb_loss(target + 0.3 * hum, target).item()
    with_noise = frame_comb_loss(target + 0.3 * torch.randn_like(hum), target).item()
    assert with_hum > 10 * with_noise
    pred = target + 0.3 * hum
    assert codec_loss(pred, target).item() == pytest.approx(spectral_loss(pred, target).item())
    assert codec_loss(pred, target, comb_weight=2.0).item() == pytest.approx(
        spectral_loss(pred, target).item() + 2.0 * with_hum, rel=1e-5)


def test_pitch_loss_is_zero_for_a_perfect_reconstruction_and_grows_with_a_pitch_shift():
    from workbench.toy.training.codec_training import pitch_loss

    def tone(freq_hz: float) -> torch.Tensor:  # a note with its octave harmonic
        return torch.from_numpy(_sine(freq_hz, 10240) + 0.5 * _sine(2 * freq_hz, 10240)).float()[None, None]

    target = tone(440.0)
    assert pitch_loss(target, target).item() == pytest.approx(0.0, abs=1e-5)
    level = pitch_loss(0.8 * target, target).item()  # the same notes, quieter
    semitone = pitch_loss(tone(440.0 * 2 ** (1 / 12)), target).item()
    fifth = pitch_loss(tone(660.0), target).item()
    assert semitone > 3 * level and fifth > 3 * level, (level, semitone, fifth)


def test_pitch_weight_zero_keeps_the_losses_and_the_training_bit_identical():
    from workbench.toy.architecture import build_codec
    from workbench.toy.synth_v2 import synth_dataset
    from workbench.toy.training.codec_training import CodecTraining, codec_loss, pitch_loss, train_codec
    from workbench.toy.training.recipe import Recipe

    assert Recipe.v2().codec_pitch_weight == 0
    target = torch.from_numpy(_sine(441, 10240)).float()[None, None]
    pred = 0.7 * target + 0.1 * torch.from_numpy(_sine(1234, 10240)).float()[None, None]
    assert torch.equal(codec_loss(pred, target, 5.0), codec_loss(pred, target, 5.0, pitch_weight=0.0))
    assert codec_loss(pred, target, 5.0, pitch_weight=2.0).item() == pytest.approx(
        codec_loss(pred, target, 5.0).item() + 2.0 * pitch_loss(pred, target).item(), rel=1e-5)
    torch.set_num_threads(1)
    audio, _ = synth_dataset(1, seed=0, duration_s=0.5)
    sizes = _tiny_v3().sizes
    kwargs = dict(ae_steps=3, vq_steps=2, batch_size=2, crop_s=0.16, kmeans_clips=4, comb_weight=5.0)
    weights = []
    for extra in ({}, {"pitch_weight": 0.0}, {"pitch_weight": 2.0}):
        codec = build_codec(sizes)
        train_codec(codec, audio, CodecTraining(**kwargs, **extra), progress=False)
        weights.append(codec.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(weights[0].values(), weights[1].values()))
    assert not all(torch.equal(a, b) for a, b in zip(weights[0].values(), weights[2].values()))


def test_v3_spectral_terms_are_off_at_zero_and_do_what_they_say():
    from workbench.toy.training.codec_training import CodecTraining, codec_loss, phase_loss, spectral_loss

    target = torch.from_numpy(_sine(441, 10240) + 0.3 * _sine(1234, 10240)).float()[None, None]
    pred = 0.7 * target + 0.05 * torch.from_numpy(_sine(2345, 10240)).float()[None, None]
    # zeros are v2's loss exactly, and CodecTraining.loss is codec_loss with its fields
    assert torch.equal(spectral_loss(pred, target), spectral_loss(pred, target, 0.0, 0.0))
    assert torch.equal(codec_loss(pred, target, 5.0), codec_loss(pred, target, 5.0, floor_db=0.0, phase_weight=0.0))
    config = CodecTraining(comb_weight=5.0, pitch_weight=2.0, floor_db=60.0, balance_weight=1.0, phase_weight=1.0)
    assert torch.equal(config.loss(pred, target), codec_loss(pred, target, 5.0, 2.0, floor_db=60.0,
                                                             balance_weight=1.0, phase_weight=1.0))
    # the relative floor: a hiss 110 dB under the music costs a lot under v2's absolute floor, ~nothing under it
    hiss = target + 3e-6 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    assert spectral_loss(hiss, target).item() > 10 * spectral_loss(hiss, target, floor_db=60.0).item()
    # the balance term sees a band that is too quiet over the whole crop
    dark = 0.3 * target
    assert (spectral_loss(dark, target, 60.0, 1.0) - spectral_loss(dark, target, 60.0)).item() > 0.1
    # the phase term: zero for the clip, large for the same magnitudes at another phase (here: sign flip)
    assert phase_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    assert phase_loss(-target, target).item() > 1.0
    assert spectral_loss(-target, target).item() < 0.02 * phase_loss(-target, target).item() + 0.1


def test_v3_sizes_build_an_encodec_and_the_shipped_codec_is_v3s():
    from workbench.toy.architecture import ToySizes, build_codec
    from workbench.toy.training.recipe import Recipe

    v2, v3 = Recipe.v2(), Recipe.v3()
    assert v2.codec_comb_weight == 0 and v3.codec_comb_weight > 0
    assert v2.codec_pitch_weight == 0 and v3.codec_pitch_weight > 0
    assert v3.sizes.codec_lstm_layers == 0 and v3.sizes.codec_residual_layers > v2.sizes.codec_residual_layers
    # only codec fields differ (and the threads and sampling temperature): the decoder, data and tokenizer
    # settings are v2's
    assert {k for k, v in v3.to_dict().items() if v != v2.to_dict()[k]} <= {
        "codec_comb_weight", "codec_pitch_weight", "codec_floor_db", "codec_balance_weight", "codec_phase_weight",
        "sizes", "threads", "sample_temperature"}
    assert v2.codec_floor_db == v2.codec_balance_weight == v2.codec_phase_weight == 0
    assert {k for k, v in v3.sizes.to_dict().items() if v != v2.sizes.to_dict()[k]} <= {
        "codec_residual_layers", "codec_kernel_size", "codec_filters", "codebook_size", "codec_hidden"}
    assert Recipe.from_dict(v3.to_dict()) == v3
    saved_v2 = {k: v for k, v in v2.to_dict().items()
                if k not in ("codec_floor_db", "codec_balance_weight", "codec_phase_weight", "decoder_resid_push")}
    assert Recipe.from_dict(saved_v2) == v2  # saved before the v3 fields existed (v2's training_info.json)
    shipped = json.loads((__import__("workbench.toy", fromlist=["WEIGHTS_DIR"]).WEIGHTS_DIR
                          / "config.json").read_text())["audio_encoder"]
    built = build_codec(v3.sizes).config
    for key in ("num_filters", "num_residual_layers", "kernel_size", "last_kernel_size", "codebook_size",
                "hidden_size", "upsampling_ratios"):
        assert getattr(built, key) == shipped[key], key
    assert build_codec(ToySizes(codec_filters=4, codec_hidden=8, codebook_size=16, codec_residual_layers=2,
                                codec_lstm_layers=0)).config.num_residual_layers == 2


def _tiny_v3():
    from dataclasses import replace

    from workbench.toy.training.recipe import Recipe

    tiny = replace(Recipe.tiny(), synth_version=2, threads=1)
    v3 = tiny.with_codec_v3()  # v3's latent width (128) is a full-scale choice: tiny keeps its own
    return replace(v3, sizes=replace(v3.sizes, codec_hidden=tiny.sizes.codec_hidden))


def test_codec_stage_writes_an_encodec_folder(tmp_path):
    from transformers import EncodecModel

    from workbench.toy.__main__ import main

    out = tmp_path / "codec"
    assert main(["train", "--tiny", "--codec-v3", "--stage", "codec", "--synth-version", "2", "--threads", "1",
                 "--no-progress", "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    info = json.loads((out / "training_info.json").read_text())
    assert info["stage"] == "codec" and info["recipe"]["codec_comb_weight"] > 0 and "decoder_s" not in info["timings_s"]
    codec = EncodecModel.from_pretrained(out)
    assert codec.config.num_residual_layers == 2
    assert not (tmp_path / "work" / "codec_checkpoint.pt").exists()  # finished: no checkpoint left


def test_codec_stage_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from workbench.toy.architecture import build_codec
    from workbench.toy.synth_v2 import synth_dataset
    from workbench.toy.training import codec_training

    torch.set_num_threads(1)
    recipe = _tiny_v3()
    audio, _ = synth_dataset(1, seed=0, duration_s=1.0)
    config = codec_training.CodecTraining(ae_steps=6, vq_steps=4, batch_size=2, crop_s=0.16, kmeans_clips=4,
                                          comb_weight=recipe.codec_comb_weight, checkpoint_every=2)
    kwargs = dict(progress=False)

    whole = build_codec(recipe.sizes)
    codec_training.train_codec(whole, audio, config, checkpoint_path=tmp_path / "a.pt", **kwargs)

    calls = {"n": 0}
    real_clip = torch.nn.utils.clip_grad_norm_

    def dies_at_the_fourth_step(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("killed")
        return real_clip(*args, **kw)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", dies_at_the_fourth_step)
    with pytest.raises(KeyboardInterrupt):
        codec_training.train_codec(build_codec(recipe.sizes), audio, config, checkpoint_path=tmp_path / "b.pt",
                                   **kwargs)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", real_clip)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["step"] == 2
    resumed = build_codec(recipe.sizes, seed=1)  # other init: everything must come from the checkpoint
    codec_training.train_codec(resumed, audio, config, checkpoint_path=tmp_path / "b.pt", **kwargs)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_tiny_v3_codec_round_trip_has_less_comb_than_v2s():
    """Trained the same few steps on the same clips, the v3 codec's losses leave a fraction of the
    comb that v2's make (the comb appears within the first hundred steps of v2's losses); the shipped
    codec (teaching model v3's) is measured on the same held-out clips and has a fraction of it too."""
    from dataclasses import replace

    from workbench.toy.architecture import build_codec
    from workbench.toy.audio_checks import codec_round_trip, load_codec
    from workbench.toy.synth_v2 import synth_clip, synth_dataset
    from workbench.toy.training.codec_training import train_codec

    torch.set_num_threads(1)
    audio, _ = synth_dataset(2, seed=0, duration_s=1.0)
    held_out = np.stack([synth_clip(g, seed=99, duration_s=1.0) for g in ("jazz", "rock")])
    v3 = _tiny_v3()
    v2 = replace(v3, codec_comb_weight=0.0, codec_pitch_weight=0.0, codec_floor_db=0.0, codec_balance_weight=0.0,
                 sizes=replace(v3.sizes, codec_residual_layers=1))
    medians = {}
    for name, recipe in (("v2", v2), ("v3", v3)):
        codec = build_codec(recipe.sizes)
        train_codec(codec, audio, recipe.codec_training(ae_steps=60, vq_steps=20, batch_size=4, kmeans_clips=8),
                    progress=False)
        trips = codec_round_trip(codec, held_out)[0]
        assert trips.std() > 0.2 * held_out.std()  # not silence
        medians[name] = np.median(comb_shares(trips))
    shipped = np.median(comb_shares(codec_round_trip(load_codec("shipped"), held_out)[0]))
    clean = np.median(comb_shares(held_out))  # 0.02: clean synthesised music reads 0.01-0.10
    # v2's losses: the comb, at any scale (0.69-0.75 here depending on the numeric stack; 0.84 and 0.55 per clip
    # on 2026-12-07's fresh environment, against 0.016 and 0.022 clean)
    assert medians["v2"] > max(0.5, 10 * clean), (medians, clean)
    assert medians["v3"] < 0.5 * medians["v2"] and shipped < 0.5 * medians["v2"], (medians, shipped)


def test_where_pitch_goes_sees_a_lost_register_and_images():
    from workbench.toy.audio_checks import where_pitch_goes
    from workbench.toy.synth_v2 import synth_dataset

    clips = synth_dataset(1, seed=3, duration_s=2.0)[0][:2].astype(np.float64)
    same = where_pitch_goes(clips, clips)
    assert same["chroma_middle"] == pytest.approx(1.0) and same["direct_400hz"] == pytest.approx(1.0)
    assert abs(same["level_db_400_1000"]) < 1e-6
    # a codec that drops everything above 400 Hz and plays the bass's mirror image there instead
    spectra = np.fft.rfft(clips, axis=-1)
    freqs = np.fft.rfftfreq(clips.shape[-1], 1 / 32000)
    above = freqs >= 400
    imaged = spectra.copy()
    n_above = int(above.sum())
    below = np.flatnonzero(freqs < 400)[::-1]  # 400 Hz + d plays what was at 400 Hz - d
    imaged[:, above] = 0
    imaged[:, np.flatnonzero(above)[:len(below)]] = 0.3 * spectra[:, below[:n_above]]
    out = np.fft.irfft(imaged, n=clips.shape[-1], axis=-1)
    lost = where_pitch_goes(clips, out)
    assert lost["image_400hz"] > 0.5 > lost["direct_400hz"]
    assert lost["chroma_lead"] < same["chroma_lead"] - 0.2
    assert lost["energy_lead_out"] < lost["energy_lead_clean"]

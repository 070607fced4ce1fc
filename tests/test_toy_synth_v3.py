"""synth_v3: v2's clips plus the bass factor; a clip with its bass is v2's clip, note for note."""
import numpy as np
import pytest

from workbench.toy import synth_v2, synth_v3


def test_bass_present_clips_are_v2_clips_and_the_other_factors_are_v2_draws():
    audio3, _, f3 = synth_v3.synth_dataset(3, seed=7, with_factors=True)
    audio2, _, f2 = synth_v2.synth_dataset(3, seed=7, with_factors=True)
    assert [{k: v for k, v in f.items() if k != "bass"} for f in f3] == f2
    present = np.array([f["bass"] == "present" for f in f3])
    assert 0 < present.sum() < len(present), "both values drawn in 12 clips"
    np.testing.assert_array_equal(audio3[present], audio2[present])
    assert not np.allclose(audio3[~present], audio2[~present])


def test_bass_override_lowers_the_bass_band_between_the_drum_hits():
    from workbench.toy.clean_readers import read_values

    for genre in synth_v3.GENRES:
        with_bass = synth_v3.synth_clip(genre, 5, bass="present")
        without = synth_v3.synth_clip(genre, 5, bass="absent")
        np.testing.assert_allclose(without, synth_v3.synth_clip(genre, 5, bass="absent"))  # seeded
        bass_band = read_values("bass", [with_bass, without])  # between the drum hits
        assert bass_band[0] - bass_band[1] > 5.0, (genre, bass_band)
        assert synth_v3.clip_factors(genre, 5, bass="absent") == {**synth_v3.clip_factors(genre, 5), "bass": "absent"}


def test_bad_bass_value_names_the_choices():
    with pytest.raises(ValueError, match="present, absent"):
        synth_v3.clip_factors("rock", 1, bass="loud")


def test_bass_reader_reads_clean_clips_with_and_without_their_bass_line():
    from workbench.toy.clean_readers import predict, read_values, toward

    clips, truth = [], []
    for genre in synth_v3.GENRES:
        for seed in range(40_000, 40_005):
            for bass in synth_v3.BASS:
                clips.append(synth_v3.synth_clip(genre, seed, bass=bass))
                truth.append(bass)
    values = read_values("bass", clips)
    assert np.mean(np.array(predict("bass", values)) == np.array(truth)) >= 0.85
    paired = values[0::2] - values[1::2]  # present minus absent, clip by clip
    assert (paired > 0).mean() >= 0.95
    np.testing.assert_array_equal(toward("bass", values, "absent"), -toward("bass", values, "present"))


def test_synth_set_version_3_rows_carry_the_bass_and_play_it():
    from workbench.data.datasets import SynthSet
    from workbench.errors import BadInputError

    rows3 = SynthSet(["rock"], n_per_genre=4, seed=11, version=3)
    rows2 = SynthSet(["rock"], n_per_genre=4, seed=11, version=2)
    assert [r["id"] for r in rows3.rows][0] == "synth-v3/rock/11"
    assert [{k: v for k, v in r.items() if k not in ("bass", "id")} for r in rows3.rows] == \
        [{k: v for k, v in r.items() if k != "id"} for r in rows2.rows]
    for i, r in enumerate(rows3.rows):
        np.testing.assert_array_equal(rows3.audio(i), synth_v3.synth_clip("rock", r["seed"], bass=r["bass"]))
    with pytest.raises(BadInputError, match="3 \\(v2's and bass\\)"):
        SynthSet(["rock"], version=4)

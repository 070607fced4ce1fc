import json

import numpy as np
import pytest

from workbench.analysis.directions import Direction, from_class_means, from_pca, from_point_sets, from_probe, normalize
from workbench.analysis.probes import LinearProbe
from workbench.errors import BadInputError, DirectionMismatchError, NotFiniteError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


MID = "random/tiny@seed0"


def data(n=90, d=10, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(["jazz", "rock", "pop"])[np.arange(n) % 3]
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[y == "rock", 2] += 4.0
    X[y == "pop", 5] -= 4.0
    X[:, 7] *= 50  # a loud, irrelevant feature: standardisation must not let it dominate
    return X, y


def test_class_means_golden_formula():
    X, y = data()
    d = from_class_means(X, y, "rock", "jazz", model_id=MID, layer=3, normalize="none")
    np.testing.assert_allclose(d.vector, X[y == "rock"].mean(0) - X[y == "jazz"].mean(0), rtol=1e-5)
    rest = from_class_means(X, y, "rock", model_id=MID, layer=3)
    assert abs(rest.norm - 1) < 1e-6 and rest.provenance["n_negative"] == 60
    assert rest.method == "class_means" and rest.layer == 3 and rest.site == "resid"


def test_probe_direction_points_at_the_class_in_activation_space():
    X, y = data()
    probe = LinearProbe(C=1.0).fit(X, y)
    d = from_probe(probe, "rock", model_id=MID, layer=1)
    assert int(np.argmax(np.abs(d.vector))) == 2 and d.vector[2] > 0
    ab = from_probe(probe, "rock", "pop", model_id=MID, layer=1, normalize="none")
    k = list(probe.classes_)
    np.testing.assert_allclose(ab.vector, probe.coef_[k.index("rock")] - probe.coef_[k.index("pop")], rtol=1e-5)
    # moving along the direction raises the class score: it is the score's gradient
    x = X[:1]
    assert (probe.decision_function(x + ab.vector)[0, k.index("rock")] - probe.decision_function(x)[0, k.index("rock")]
            > 0)
    with pytest.raises(BadInputError, match="not one of the probe's classes"):
        from_probe(probe, "polka", model_id=MID, layer=1)


def test_pca_sign_alignment_and_point_sets():
    X, y = data()
    X = X[y != "pop"]
    y = y[y != "pop"]
    X[:, 7] /= 50
    d = from_pca(X, y, "rock", model_id=MID, layer=0)
    assert abs(d.vector[2]) > 0.9 and d.vector[2] > 0
    assert (-d).vector[2] < 0 and (-d).provenance["negated"]
    sel = from_point_sets(X, np.flatnonzero(y == "jazz"), np.flatnonzero(y == "rock"), model_id=MID, layer=0)
    assert sel.cosine(from_class_means(X, y, "rock", "jazz", model_id=MID, layer=0)) > 0.999


def test_normalisation_options():
    X, y = data()
    v, info = normalize(np.array([3.0, 4.0]), "unit")
    assert np.allclose(v, [0.6, 0.8]) and info["raw_norm"] == 5.0
    d = from_class_means(X, y, "rock", model_id=MID, layer=0, normalize="mean_norm")
    assert abs(d.norm - np.linalg.norm(X, axis=1).mean()) < 1e-3
    with pytest.raises(BadInputError, match="use one of"):
        normalize(v, "l3")
    with pytest.raises(BadInputError, match="zero"):
        from_point_sets(X, [0], [0], model_id=MID, layer=0)
    with pytest.raises(NotFiniteError):
        Direction(np.array([np.nan, 1.0]), MID, 0)


def test_save_load_round_trip_and_mismatch(tmp_path):
    X, y = data()
    d = from_class_means(X, y, "rock", model_id=MID, layer=4, site="mlp")
    path = d.save(tmp_path / "dirs" / "rock")
    sidecar = path.with_name(path.name + ".json")  # rock.safetensors.json: named after the full file name
    assert path.name == "rock.safetensors" and json.loads(sidecar.read_text())["layer"] == 4
    back = Direction.load(path, expect_model_id=MID, expect_hidden_size=10)
    np.testing.assert_array_equal(back.vector, d.vector)
    assert (back.layer, back.site, back.method, back.provenance["positive"]) == (4, "mlp", "class_means", "rock")
    sidecar.unlink()  # the safetensors header holds the same metadata
    assert Direction.load(path).model_id == MID
    with pytest.raises(DirectionMismatchError, match="made on 'random/tiny@seed0'"):
        Direction.load(path, expect_model_id="facebook/musicgen-small")
    with pytest.raises(DirectionMismatchError, match="hidden size is 1024"):
        Direction.load(path, expect_hidden_size=1024)


def test_plugs_into_steering(tiny):
    import workbench as wb
    d = Direction(np.ones(tiny.hidden_size), tiny.model_id, 1)
    spec = wb.SteeringSpec.single(d, layers=(1,), strength=2.0)
    clip = wb.generate(tiny, "jazz", duration_s=0.2, steering=spec).clips[0]
    assert clip.waveform.size > 0
    other = Direction(np.ones(tiny.hidden_size), "facebook/musicgen-small", 1)
    with pytest.raises(DirectionMismatchError):
        wb.generate(tiny, "jazz", duration_s=0.2, steering=wb.SteeringSpec.single(other, layers=(1,), strength=2.0))


def test_from_course_points_from_a_class_start_to_its_end_without_what_every_clip_does():
    from workbench.analysis.directions import from_course

    rng = np.random.default_rng(3)
    rise, drift, level = np.eye(6)[0], np.eye(6)[1], np.eye(6)[2]
    # crescendo clips rise along axis 0, diminuendo clips fall: the same states in the opposite order, so their
    # whole-clip means are equal (a class mean has no sign in time); every clip drifts along axis 1
    labels = ["crescendo", "diminuendo"] * 12
    clips = []
    for i, s in enumerate((1, -1) * 12):
        t = np.linspace(-1, 1, 30 + i % 3)[:, None]  # clips of different lengths
        clips.append(rng.normal(0, 0.05, (len(t), 6)) + s * t * rise + t * drift + level)
    up = from_course(clips, labels, "crescendo", model_id=MID, layer=2)
    assert up.method == "course" and up.layer == 2
    assert up.vector @ rise > 0.99  # sign in time: toward the late state, the drift removed
    down = from_course(clips, labels, "diminuendo", "crescendo", model_id=MID, layer=2)
    assert down.cosine(up) < -0.99
    means = from_class_means(np.stack([c.mean(0) for c in clips]), labels, "crescendo", model_id=MID, layer=2)
    assert abs(means.vector @ rise) < 0.5  # what the class mean makes of an order: noise
    with pytest.raises(BadInputError, match="one label per clip"):
        from_course(clips, labels[:-1], "crescendo", model_id=MID, layer=2)
    with pytest.raises(BadInputError, match="frames >= 2"):
        from_course([c[:1] for c in clips], labels, "crescendo", model_id=MID, layer=2)
    with pytest.raises(BadInputError, match="no rows labelled 'forte'"):
        from_course(clips, labels, "forte", model_id=MID, layer=2)
    with pytest.raises(BadInputError, match="mean residual norm"):
        from_course(clips, labels, "crescendo", model_id=MID, layer=2, normalize="mean_norm")
    with pytest.raises(BadInputError, match="no course"):
        from_course([np.ones((4, 6))] * 4, labels[:4], "crescendo", model_id=MID, layer=2)

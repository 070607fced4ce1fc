import numpy as np
import pytest

from workbench.analysis.probes import (
    LabelMismatchError,
    LinearProbe,
    NonFiniteActivationsError,
    OneClassError,
    ProbeInputError,
    SweepConfig,
    TooFewSamplesError,
    sweep,
)


def blobs(n=120, d=12, k=3, shift=1.5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centers = rng.normal(size=(k, d)) * shift
    return (rng.normal(size=(n, d)) + centers[y]).astype(np.float32), np.array(["a", "b", "c"])[y]


def test_logistic_matches_sklearn_on_standardised_features():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    X, y = blobs(shift=0.3)
    probe = LinearProbe(C=0.5, max_iter=500).fit(X, y)
    sk = LogisticRegression(C=0.5, max_iter=2000, tol=1e-8).fit(StandardScaler().fit_transform(X), y)
    assert list(probe.classes_) == list(sk.classes_)
    np.testing.assert_allclose(probe.coef_standardized_, sk.coef_, atol=2e-3 * np.abs(sk.coef_).max())
    np.testing.assert_allclose(probe.predict_proba(X), sk.predict_proba(StandardScaler().fit(X).transform(X)),
                               atol=2e-3)


def test_ridge_matches_sklearn():
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler
    X, y = blobs()
    probe = LinearProbe(kind="ridge", alpha=3.0).fit(X, y)
    onehot = (y[:, None] == np.unique(y)[None]).astype(float)
    sk = Ridge(alpha=3.0).fit(StandardScaler().fit_transform(X), onehot)
    np.testing.assert_allclose(probe.coef_standardized_, sk.coef_, atol=1e-4)
    assert probe.score(X, y) > 0.9


def test_estimator_contract():
    X, y = blobs()
    probe = LinearProbe()
    assert probe.fit(X, y) is probe
    assert probe.coef_.shape == (3, X.shape[1]) and probe.intercept_.shape == (3,)
    proba = probe.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    assert set(probe.predict(X)) <= set(probe.classes_)
    assert probe.score(X, y) > 0.95
    # activation-space coefficients give the same scores as the standardised model
    z = X @ probe.coef_.T + probe.intercept_
    np.testing.assert_allclose(z, probe.decision_function(X), rtol=1e-5, atol=1e-5)


def test_fitting_settings_go_in_a_sweep_config():
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.repeat([0, 1], 10)
    with pytest.raises(ProbeInputError, match=r"folds, seed belong to the sweep's config: pass "
                                              r"config=SweepConfig\(folds=3, seed=1\)"):
        sweep({("resid", 0): X}, y, folds=3, seed=1)
    with pytest.raises(ProbeInputError, match="folds=1: cross-validation needs folds >= 2"):
        SweepConfig(folds=1)
    with pytest.raises(ProbeInputError, match="not a SweepConfig"):
        sweep({("resid", 0): X}, y, {"folds": 3})
    assert sweep({("resid", 0): X}, y, SweepConfig(folds=3, seed=1)).folds == 3


def test_sweep_table_control_and_confusion():
    X, y = blobs(n=150)
    rng = np.random.default_rng(1)
    acts = {("resid", 0): rng.normal(size=X.shape).astype(np.float32), ("resid", 1): X}
    result = sweep(acts, y, config=SweepConfig(folds=5, seed=0))
    rows = {r["layer"]: r for r in result.rows}
    assert set(rows[1]) >= {"layer", "site", "accuracy_mean", "accuracy_std", "macro_f1",
                            "control_accuracy_mean"}
    assert rows[1]["accuracy_mean"] > 0.9 and rows[0]["accuracy_mean"] < 0.6
    assert rows[1]["control_accuracy_mean"] < 0.6  # shuffled labels: near chance
    assert result.confusion[("resid", 1)].sum() == len(y)
    assert result.best()["layer"] == 1
    assert result.probes[("resid", 1)].score(X, y) > 0.9
    assert "ctrl" in repr(result)
    again = sweep(acts, y, config=SweepConfig(folds=5, seed=0))
    assert again.rows == result.rows  # seeded


def test_sweep_ridge_and_stratified_folds():
    X, y = blobs(n=60)
    result = sweep({("mlp", 2): X}, y, kind="ridge", config=SweepConfig(folds=3, control=False))
    assert result.rows[0]["accuracy_mean"] > 0.9 and "control_accuracy_mean" not in result.rows[0]
    from workbench.analysis.probes import _fold_ids
    codes = np.unique(y, return_inverse=True)[1]
    folds = _fold_ids(codes, 3, seed=0)
    per_fold = np.array([np.bincount(codes[folds == k], minlength=3) for k in range(3)])
    assert np.ptp(per_fold, axis=0).max() <= 1  # each class spread evenly over the folds


def test_bad_inputs_name_the_fix():
    X, y = blobs()
    with pytest.raises(OneClassError, match="at least two classes"):
        LinearProbe().fit(X, ["a"] * len(X))
    with pytest.raises(LabelMismatchError, match="one label per row"):
        LinearProbe().fit(X, y[:-1])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(NonFiniteActivationsError, match="1 of"):
        LinearProbe().fit(bad, y)
    # min(folds, rows of the smallest class)
    assert sweep({("resid", 0): X[:9]}, y[:9], SweepConfig(folds=5)).folds == 3
    with pytest.raises(TooFewSamplesError, match="single row.*Collect more clips"):
        sweep({("resid", 0): X[:4]}, y[:4], config=SweepConfig(folds=5))  # class "a" twice, "b" and "c" once
    assert issubclass(OneClassError, ValueError)


def test_sweep_reads_an_activation_store(tmp_path):
    from workbench.data.store import ActivationStore, StoreIdentity
    X, y = blobs(n=60)
    store = ActivationStore.create(tmp_path / "s", StoreIdentity("m", "k", keys=[("resid", 0), ("resid", 1)]))
    rows = [dict(id=str(i), label=str(lab)) for i, lab in enumerate(y)]
    store.append({("resid", 0): X, ("resid", 1): X[:, ::-1]}, rows[:], None, None)
    result = sweep(store, config=SweepConfig(folds=3), layers=[1])
    assert [r["layer"] for r in result.rows] == [1] and result.rows[0]["accuracy_mean"] > 0.9
    with pytest.raises(LabelMismatchError, match="one label per row"):
        sweep(store, labels=y[:10], config=SweepConfig(folds=3))
    both = np.stack([X, X], axis=1)
    with pytest.raises(ValueError, match="cfg_row='cond'"):
        sweep({("resid", 0): both}, y, config=SweepConfig(folds=3))


def test_large_activation_offsets_keep_float32_precision():
    X, y = blobs(n=90, d=8, shift=0.5)
    offset = np.float32(3000.0)  # like MusicGen's "massive activation" dimensions
    small = LinearProbe(C=0.5).fit(X, y)
    big = LinearProbe(C=0.5).fit(X + offset, y)
    np.testing.assert_allclose(big.coef_standardized_, small.coef_standardized_, atol=2e-3)
    assert (big.predict(X + offset) == small.predict(X)).mean() > 0.97


def test_probe_save_load_round_trip(tmp_path):
    X, y = blobs()
    probe = LinearProbe(C=2.0).fit(X, y)
    path = probe.save(tmp_path / "probe", layer=3, model_id="m")
    back = LinearProbe.load(path, expect_n_features=X.shape[1])
    np.testing.assert_array_equal(back.predict_proba(X), probe.predict_proba(X))
    assert back.C == 2.0 and list(back.classes_) == list(probe.classes_) and back.provenance["layer"] == 3
    with pytest.raises(LabelMismatchError, match="another model"):
        LinearProbe.load(path, expect_n_features=1024)


def test_identical_rows_warn_that_the_probe_can_only_guess():
    X = np.ones((30, 4), np.float32)
    with pytest.warns(UserWarning, match="same for every row"):
        result = sweep({("resid", 0): X}, np.arange(30) % 2, config=SweepConfig(folds=3))
    assert result.rows[0]["accuracy_mean"] == pytest.approx(0.5)

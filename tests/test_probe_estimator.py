"""LinearProbe is a scikit-learn estimator: scikit-learn's own estimator checks, and the contract they imply."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from workbench.analysis.probes import LinearProbe, ProbeInputError, ProbeNotFittedError, SweepConfig, sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Checks that cannot apply, with the reason; empty while every check passes for both kinds. (Two checks
# skip themselves where their optional dependency is missing: check_classifier_data_not_an_array
# without pandas, check_array_api_input without SCIPY_ARRAY_API=1.)
EXPECTED_FAILED: dict[str, dict[str, str]] = {"logistic": {}, "ridge": {}}


@parametrize_with_checks([LinearProbe(), LinearProbe(kind="ridge")],
                         expected_failed_checks=lambda est: EXPECTED_FAILED[est.kind])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(n=60, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return (rng.normal(size=(n, d)) + 2 * np.eye(k, d)[y]).astype(np.float32), y


def test_hyper_parameters_are_checked_by_fit_not_init():
    probe = LinearProbe(kind="lasso", C=-1)  # stored as given: scikit-learn's rule (clone, set_params)
    assert probe.get_params() == dict(kind="lasso", C=-1, alpha=1.0, standardize=True, max_iter=100)
    X, y = blobs()
    with pytest.raises(ProbeInputError, match="use 'logistic' or 'ridge'"):
        probe.fit(X, y)
    with pytest.raises(ProbeInputError, match="C=-1: pass a finite number > 0"):
        probe.set_params(kind="logistic").fit(X, y)
    with pytest.raises(ProbeInputError, match="max_iter=0"):
        LinearProbe(max_iter=0).fit(X, y)
    with pytest.raises(ValueError, match="use 'logistic' or 'ridge'"):
        sweep({("resid", 0): X}, y, kind="lasso")  # sweep still refuses a bad kind up front


def test_set_params_clone_and_learned_attributes():
    X, y = blobs()
    probe = LinearProbe().set_params(C=0.5, max_iter=50)
    assert probe.fit(X, y) is probe and (probe.C, probe.max_iter) == (0.5, 50)
    assert probe.n_features_in_ == 5 and list(probe.classes_) == [0, 1, 2] and probe.n_iter_ >= 1
    twin = clone(probe)
    assert twin.get_params() == probe.get_params() and not hasattr(twin, "coef_")
    with pytest.raises(ProbeNotFittedError, match="call .fit"):
        twin.predict(X)
    assert "C=0.5" in repr(probe)


def test_binary_decision_function_is_one_column_and_agrees_with_predict():
    X, y = blobs(k=2)
    probe = LinearProbe().fit(X, np.array(["jazz", "rock"])[y])
    scores = probe.decision_function(X)
    assert scores.shape == (len(X),)
    np.testing.assert_array_equal(np.where(scores > 0, "rock", "jazz"), probe.predict(X))
    assert probe.coef_.shape == (2, 5)  # one row per class, as from_probe reads it


def test_works_inside_sklearn_tools():
    X, y = blobs(n=90)
    scores = cross_val_score(make_pipeline(StandardScaler(), LinearProbe(C=0.5)), X, y, cv=3)
    assert scores.mean() > 0.8
    with pytest.raises(ValueError, match="X has 4 features, but LinearProbe is expecting 5"):
        LinearProbe().fit(X, y).predict(X[:, :4])


def test_sweep_probes_match_a_probe_fitted_alone():
    X, y = blobs(n=90)
    result = sweep({("resid", 1): X}, y, config=SweepConfig(folds=3))
    alone = LinearProbe().fit(X, y)
    swept = result.probes[("resid", 1)]
    assert swept.get_params() == alone.get_params() and swept.n_features_in_ == 5
    np.testing.assert_allclose(swept.coef_, alone.coef_, atol=5e-3 * np.abs(alone.coef_).max())  # L-BFGS tolerance
    assert (swept.predict(X) == alone.predict(X)).all()

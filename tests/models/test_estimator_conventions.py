"""Every estimator in csforecast.models follows the scikit-learn conventions: keyword-only parameters stored
verbatim, clone() works (also on a fitted estimator, giving an unfitted one), its own __sklearn_tags__, and
sklearn's NotFittedError from every prediction / explanation method before fit."""
import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import Tags

import csforecast.models as models

ESTIMATORS = [getattr(models, n) for n in models.__all__]
X = pd.DataFrame({"a": [1.0, 2.0]})
# every method that predicts, explains or reports a fitted quantity, with arguments that bind
CALLS = {
    "predict": (X,), "predict_proba": (X,), "predict_interval": (X,), "interval_of": ([0.2, 0.3],), "split_moments": (X,), "split_probabilities": (X,), "explain": (X,), "explain_arrays": (X,), "explain_raw": (X,), "mean_abs_contribution": (X,),
    "predict_survival": (X, [30]), "predict_risk": (X,), "contributions": (X,), "survival_at": (X, [1.0, 1.0]),
    "renewal_survival": (X,), "expected_residual_lifetime": (X, 100.0), "survival_matrix": (X, [0.0, 30.0]),
    "design": (X,), "linear_predictor": (X,), "equal_weight_score": (X,), "component_scores": (X,), "predict_with_components": (X,),
    "measure_scores": (X,), "predict_log_ratio": (X,), "expected_ratio": (X,), "ratio_moments": (X,),
    "summary": (), "survival": (1,), "retention_rate": (1,), "churn_probability": (1,), "project": (3,),
    "predict_components": (X,), "derl": (0.1,), "discounted_expected_lifetime": (0.1,), "clv": (100.0, 0.1), "dlv": (100.0, 0.1),
}


def test_models_exports_every_estimator_directly():
    assert {c.__name__ for c in ESTIMATORS} == {"ChurnClassifier", "SurvivalModel", "SnapshotSurvivalModel",
                                                 "HealthScoreModel", "ExpansionModel", "ShiftedBetaGeometric",
                                                 "PooledChurnModel", "RetentionChurnModel", "CallBlend"}
    assert all(issubclass(c, BaseEstimator) for c in ESTIMATORS)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_parameters_are_keyword_only_and_clone_round_trips(cls):
    params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
    assert params and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    with pytest.raises(TypeError):
        cls(params[0].default)
    est = cls()
    c = clone(est)
    assert type(c) is cls and c is not est and c.get_params() == est.get_params()
    assert set(est.get_params()) == {p.name for p in params}


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_own_sklearn_tags(cls):
    # defined by csforecast (the class or a shared csforecast base), not only inherited from scikit-learn
    assert any("__sklearn_tags__" in vars(k) for k in cls.__mro__ if k.__module__.startswith("csforecast."))
    assert isinstance(cls().__sklearn_tags__(), Tags)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_prediction_method_raises_not_fitted_before_fit(cls):
    est = cls()
    names = [n for n in CALLS if hasattr(cls, n)]
    assert names, cls
    for name in names:
        with pytest.raises(NotFittedError):
            attr = getattr(est, name)              # a property (summary) raises on access
            attr(*CALLS[name])


def test_predicting_methods_are_all_covered():
    """No public prediction-like method escapes the not-fitted check above."""
    skip = {"fit", "fit_decisions", "get_params", "set_params", "score", "score_cutoffs", "get_metadata_routing",
            "set_fit_request", "set_score_request", "set_predict_request", "set_predict_proba_request",
            "ancillary_summary",
            "set_predict_threads"}   # a setter of how many threads predict with, allowed before fit (no prediction)
    for cls in ESTIMATORS:
        public = {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")} - skip
        methods = {n for n in public if callable(getattr(cls, n)) or isinstance(getattr(cls, n), property)}
        assert methods <= set(CALLS), (cls.__name__, sorted(methods - set(CALLS)))


def test_clone_of_fitted_estimators_is_unfitted():
    from lifelines.datasets import load_rossi

    rossi = load_rossi()
    rng = np.random.default_rng(0)
    Xe = pd.DataFrame({"arr": rng.lognormal(9, 1, 300), "segment": rng.choice(["a", "b"], 300)})
    fitted = [
        models.SurvivalModel(kind="cox").fit(rossi, "week", "arrest"),
        models.ExpansionModel(min_rows=1000).fit(Xe, rng.normal(0.02, 0.1, 300)),
        models.ShiftedBetaGeometric().fit([1000, 869, 743, 653, 593, 551, 517, 491]),
    ]
    for est in fitted:
        c = clone(est)
        assert c.get_params() == est.get_params()
        with pytest.raises(NotFittedError):
            c.predict(Xe) if hasattr(c, "predict") else (c.survival(1) if hasattr(c, "survival")
                                                         else c.predict_risk(rossi))
    assert fitted[1].predict(Xe.head(3)) == pytest.approx(np.full(3, fitted[1].expected_ratio(Xe.head(3))[0] - 1))


def test_setting_prediction_threads_does_not_make_an_estimator_look_fitted():
    est = models.ChurnClassifier().set_predict_threads(1)
    with pytest.raises(NotFittedError):
        est.predict_proba(*CALLS["predict_proba"])

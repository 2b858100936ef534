"""CallBlend on synthetic calls with a known structure: the model's logit and the call each carry part of the
truth, some CSMs are optimistic and some pessimistic. The blend must beat both on later rows, recover the CSMs'
direction, and keep its contract (NotFittedError, both outcomes, missing calls)."""
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.exceptions import NotFittedError

from csforecast.metrics.calibration import clipped_log_loss
from csforecast.models.blend import CallBlend

OPTIMISM = {"CSM-A": 1.2, "CSM-B": -1.2, "CSM-C": 0.0, "CSM-D": 0.8, "CSM-E": -0.8, "CSM-F": 0.0}
CUTS = (("commit", 0.06), ("most_likely", 0.15), ("at_risk", 0.40))


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    rng = np.random.default_rng(seed)
    z = rng.normal(-2.0, 1.2, n)                       # the true churn log-odds
    y = (rng.random(n) < expit(z)).astype(int)
    model_logit = z + rng.normal(0, 0.9, n)            # what the data tables show
    csm = rng.choice(list(OPTIMISM), n)
    seen = z + rng.normal(0, 0.9, n) - np.array([OPTIMISM[c] for c in csm])   # what the CSM sees, biased
    p_seen = expit(seen)
    cat = np.full(n, "churn", dtype=object)
    for name, cut in reversed(CUTS):
        cat[p_seen < cut] = name
    X = pd.DataFrame({"model_logit": model_logit, "call_category": cat, "call_csm_id": csm,
                      "days_to_renewal": rng.integers(0, 120, n).astype(float)})
    t = pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 700, n)), unit="D"))
    return X, y, t


def test_blend_beats_model_and_calls_and_recovers_csm_direction():
    X, y, t = synthetic(12000, 0)
    fit, ev = slice(0, 9000), slice(9000, None)
    est = CallBlend(blend_start=t.iloc[6000]).fit(X.iloc[fit], y[fit], sample_time=t.iloc[fit])
    comp = est.predict_components(X.iloc[ev])
    yv = y[ev]
    ll = {k: clipped_log_loss(yv, comp[k].to_numpy()) for k in ("p_model", "p_call", "p_blend")}
    assert ll["p_blend"] < ll["p_model"] - 0.005 and ll["p_blend"] < ll["p_call"] - 0.005, ll
    table = est.csm_table_.set_index("csm_id")
    assert {"n", "churn_rate", "mean_p_call", "bias", "bias_low", "bias_high", "brier"} <= set(table.columns)
    # optimistic CSMs (they see less churn than there is) get a negative bias, pessimistic ones a positive bias
    for csm in ("CSM-A", "CSM-D"):
        assert table.loc[csm, "bias"] < 0 and table.loc[csm, "bias_high"] < 0, table.loc[csm]
    for csm in ("CSM-B", "CSM-E"):
        assert table.loc[csm, "bias"] > 0 and table.loc[csm, "bias_low"] > 0, table.loc[csm]
    assert (table["bias_low"] <= table["bias"]).all() and (table["bias"] <= table["bias_high"]).all()
    # category rates are ordered like the categories' meaning
    r = est.category_rate_
    assert r["commit"] < r["most_likely"] < r["at_risk"] < r["churn"]
    assert 0 < est.n_blend_rows_ < 9000


def test_rows_without_a_call_keep_the_models_probability():
    X, y, t = synthetic(3000, 1)
    est = CallBlend().fit(X, y)
    Xn = X.head(5).assign(call_category=None)
    comp = est.predict_components(Xn)
    assert np.allclose(comp["p_blend"], expit(Xn["model_logit"]))
    assert comp["p_call"].isna().all() and comp["csm_bias"].isna().all()
    assert est.predict_proba(X.head(3)).shape == (3, 2)


def test_contract_errors():
    with pytest.raises(NotFittedError):
        CallBlend().predict_proba(pd.DataFrame({"model_logit": [0.0]}))
    X, y, t = synthetic(500, 2)
    with pytest.raises(ValueError, match="both"):
        CallBlend().fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="needs the columns"):
        CallBlend().fit(X.drop(columns="call_csm_id"), y)
    with pytest.raises(ValueError, match="blend_start"):
        CallBlend(blend_start="2100-01-01").fit(X, y, sample_time=t)
    with pytest.raises(ValueError, match="no rows with a CSM call"):
        CallBlend().fit(X.assign(call_category=None), y)
    assert logit(0.5) == 0

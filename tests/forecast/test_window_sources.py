"""Where each part of a window forecast comes from, on a small simulated portfolio (the session's
``small_portfolio``, which has opportunities and their history):

* renewals beyond the churn model's training horizon (more than 365 days after as_of) are scored by the
  survival model with the rule the score set uses (``beyond_churn_horizon``), and the result says how many
  decisions and how much ARR it scored that way (a real Cox ``SnapshotSurvivalModel``);
* the mid-term expansion uses the open pipeline for the window where it exists (``addon_source``), the history
  method elsewhere."""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from csforecast.forecast.renewals import forecast_window, renewal_book, scoring_rows
from csforecast.models.snapshot_survival import CHURN_MODEL_HORIZON_DAYS, SnapshotSurvivalModel

CHURN_P = 0.9          # far from any survival estimate, so a decision left to the churn model shows


class ConstantChurn:
    """A churn 'model' answering CHURN_P for every row (no feature_names_in_: gets every column)."""

    def predict_proba(self, X):
        return np.column_stack([np.full(len(X), 1 - CHURN_P), np.full(len(X), CHURN_P)])


@pytest.fixture(scope="module")
def setup(small_portfolio):
    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import build_snapshots, data_end

    src = open_source(str(small_portfolio))
    de = data_end(src)
    grid = [(pd.Timestamp(de) - pd.DateOffset(months=m)).date() for m in (10, 14)]
    snaps = build_snapshots(src, grid)
    est = SnapshotSurvivalModel(kind="cox", penalizer=0.05).fit(snaps, snaps["label_duration_days"],
                                                                 snaps["label_event"])
    as_of = pd.Timestamp(de)
    # a year-long window starting 9 months out: renewals both inside and beyond the churn model's horizon
    start, end = (as_of + pd.DateOffset(months=9)).date(), (as_of + pd.DateOffset(months=21)).date()
    args = dict(churn_estimator=ConstantChurn(), tau=0.0, draws=500, seed=3, top=10_000)
    return src, est, de, start, end, forecast_window(src, start, end, survival_estimator=est,
                                                     survival_version="7", **args)


def test_far_renewals_are_scored_by_survival_as_in_the_score_set(setup):
    from csforecast.features.snapshot import build_snapshots
    from csforecast.scoring.survival import score_survival, serve

    src, est, de, start, end, r = setup
    book = renewal_book(src.frame("contracts"), src.frame("accounts"), start, end, pd.Timestamp(de))
    pending = book[book["status"] == "pending"]
    far = pending["days_ahead"].to_numpy() > CHURN_MODEL_HORIZON_DAYS
    assert far.any() and (~far).any(), "the window must hold renewals on both sides of the horizon"

    # the score set's rule on the same rows: churn_probability after scoring.survival.serve
    now = build_snapshots(src, [date.fromisoformat(str(de))], labels=False)
    rows, found = scoring_rows(pending, now, pd.Timestamp(de))
    assert found.all()
    surv = score_survival(est, rows)
    served = serve(pd.DataFrame({"churn_probability": CHURN_P, "days_to_renewal": rows["days_to_renewal"],
                                 "p_renewal_survival": surv["p_renewal_survival"], "arr": pending["arr"].to_numpy()}))
    assert (served["churn_probability_source"].to_numpy() == "survival").tolist() == far.tolist()

    items = {(x["account_id"], x["contract_id"]): x for x in r["at_risk"]}
    assert len(items) == len(pending)
    for k, (acc, cid) in enumerate(zip(pending["account_id"].astype(str), pending["contract_id"])):
        item = items[(acc, cid)]
        assert item["p_churn"] == pytest.approx(served["churn_probability"].iloc[k], abs=1e-6)
        assert item["p_churn_source"] == ("survival" if far[k] else "model")
        if not far[k]:
            assert item["p_churn"] == pytest.approx(CHURN_P)

    sv = r["scored_by_survival"]
    assert sv["decisions"] == int(far.sum()) and sv["horizon_days"] == CHURN_MODEL_HORIZON_DAYS
    assert sv["arr"] == pytest.approx(pending.loc[far, "arr"].sum(), abs=0.01)
    assert sv["survival_version"] == "7"
    assert any("scored by the survival model" in w for w in r["warnings"])
    assert not any("no survival model was available" in w for w in r["warnings"])


def test_without_a_survival_model_the_churn_model_scores_them_and_says_so(tmp_path):
    from csforecast.data.sources import open_source

    accounts = pd.DataFrame({"account_id": ["G", "K"], "name": ["Acct G", "Acct K"], "segment": "SMB",
                             "industry": "Software", "region": "EMEA", "csm_id": "CSM-1",
                             "created_at": pd.Timestamp("2022-06-01")})
    contracts = pd.DataFrame(
        [("g0", "G", "2023-03-01", "2024-03-01", 600.0, "h1"),
         ("h1", "G", "2024-03-01", "2026-03-01", 700.0, None),      # due 577 days after as_of
         ("k1", "K", "2024-07-31", "2025-07-31", 100.0, None)],     # sets the data end (2024-08-01)
        columns=["contract_id", "account_id", "start_date", "end_date", "arr", "renewed_by"])
    contracts["start_date"] = pd.to_datetime(contracts["start_date"])
    contracts["end_date"] = pd.to_datetime(contracts["end_date"])
    contracts[["seats", "auto_renew", "churn_reason"]] = [10.0, False, None]
    accounts.to_csv(tmp_path / "accounts.csv", index=False)
    contracts.to_csv(tmp_path / "contracts.csv", index=False)
    r = forecast_window(open_source(str(tmp_path)), "2026-01-01", "2026-04-01", as_of="2024-08-01",
                        churn_estimator=ConstantChurn(), tau=0.0, draws=200, seed=3)
    assert r["renewals_due"]["pending_count"] == 1
    assert r["scored_by_survival"] == {"decisions": 0, "arr": 0.0, "horizon_days": CHURN_MODEL_HORIZON_DAYS,
                                       "survival_version": None}
    assert [(x["contract_id"], x["p_churn"], x["p_churn_source"]) for x in r["at_risk"]] == [("h1", CHURN_P, "model")]
    assert any("no survival model was available" in w for w in r["warnings"])


def test_midterm_expansion_uses_the_pipeline_where_the_window_has_one(setup):
    from csforecast.config import get_settings
    from csforecast.forecast.addons import addon_forecast
    from csforecast.forecast.pipeline import pipeline_addons

    src, _est, de, start, end, far_window = setup
    assert src.has("opportunities") and src.has("opportunity_history")
    # opportunities close 45-150 days after they open: the window starting 9 months out has none, history it is
    me = far_window["midterm_expansion"]
    assert me["addon_source"] == "history" and me["pipeline"]["pipeline_accounts"] == 0
    assert me["pipeline"]["available"] is True and me["pipeline"]["opportunities"] == 0
    hist, _ = addon_forecast(src.frame("contracts"), src.frame("accounts"), start, end, pd.Timestamp(de))
    assert me["expected_arr"] == pytest.approx(hist["mean"].sum(), rel=1e-9)

    # the next quarter: accounts with open opportunities due in it take their weighted pipeline, the rest history
    q0, q1 = pd.Timestamp(de), pd.Timestamp(de) + pd.DateOffset(months=3)
    r = forecast_window(src, q0, q1, churn_estimator=ConstantChurn(), tau=0.0, draws=500, seed=3)
    me = r["midterm_expansion"]
    assert me["addon_source"] == "pipeline" and me["pipeline"]["probabilities"] == "learned"
    book = renewal_book(src.frame("contracts"), src.frame("accounts"), q0, q1, q0)
    pipe, info = pipeline_addons(src.frame("opportunities"), src.frame("opportunity_history"), q0, q1, q0,
                                 stage_probabilities=get_settings().pipeline.stage_probabilities,
                                 renewals=book.loc[book["status"] == "pending", ["account_id", "renewal_date"]])
    assert info["opportunities"] > 0 and me["pipeline"]["opportunities"] == info["opportunities"]
    hist, _ = addon_forecast(src.frame("contracts"), src.frame("accounts"), q0, q1, q0)
    customers = set(hist["account_id"].astype(str))
    used = pipe[pipe["account_id"].astype(str).isin(customers)]
    assert me["pipeline"]["pipeline_accounts"] == len(used) > 0
    assert me["pipeline"]["pipeline_expected_arr"] == pytest.approx(used["mean"].sum(), rel=1e-9)
    rest = hist[~hist["account_id"].astype(str).isin(set(used["account_id"].astype(str)))]
    assert me["pipeline"]["history_accounts"] == len(rest)
    # the rest keep the history method, scaled by what accounts without pipeline signed against it in past
    # quarters (the history rate counts the pipeline's add-ons too); every add-on is a won opportunity here,
    # so those accounts signed well under the rate (three past quarters of 92 days fit in 365)
    from csforecast.forecast.pipeline import off_pipeline_factor

    off = off_pipeline_factor(src.frame("contracts"), src.frame("accounts"), src.frame("opportunities"),
                              src.frame("opportunity_history"), q0, q1, q0,
                              stage_probabilities=get_settings().pipeline.stage_probabilities)
    assert me["pipeline"]["off_pipeline"] == off and off["windows"] == 3 and 0 <= off["factor"] < 1
    assert off["factor"] == pytest.approx(off["actual"] / off["forecast"], rel=1e-3)
    assert me["pipeline"]["history_expected_arr"] == pytest.approx(off["factor"] * rest["mean"].sum(), rel=1e-9)
    assert me["expected_arr"] == pytest.approx(used["mean"].sum() + off["factor"] * rest["mean"].sum(), rel=1e-9)
    # and it is the NRR forecast's mid-term part
    assert r["expected"]["midterm_expansion_arr"] == pytest.approx(me["expected_arr"], rel=1e-6)

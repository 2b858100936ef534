"""Small books get the documented fallbacks, never a traceback (docs/operations.md): 60 and 200 accounts × 2
years, 60 accounts × 1 year, a source with only accounts and contracts (all their columns, or only the five no
fallback stands in for), and 800 accounts × 2 years (full models, a robust health fit).
Real simulated portfolios, real MLflow (sqlite), real fits; `train`, `score` and `forecast` through the CLI."""
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from csforecast.cli import app
from csforecast.config import reset_settings
from csforecast.data.sources import open_source
from csforecast.pipelines import churn as churn_pipeline
from csforecast.pipelines.champion import PromotionPolicy
from csforecast.pipelines.context import TrainingContext
from csforecast.pipelines.health import train_health
from csforecast.pipelines.train import Skipped, train_families
from csforecast.tracking import store

pytestmark = pytest.mark.slow


def simulated(tmp_path_factory, n: int, years: int = 2):
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp(f"sim{n}x{years}")
    simulate_portfolio(n, years, seed=7).write(d)
    return d


@pytest.fixture(scope="module")
def book60(tmp_path_factory):
    return simulated(tmp_path_factory, 60)


@pytest.fixture(scope="module")
def book200(tmp_path_factory):
    return simulated(tmp_path_factory, 200)


def contracts_end(d) -> pd.Timestamp:
    return pd.to_datetime(pd.read_parquet(d / "contracts.parquet")["start_date"]).max()


def score_and_forecast(runner, d):
    """`score`, then `forecast` of the quarter after the last contract start: both exit 0, no traceback."""
    s = runner.invoke(app, ["score", "--data", str(d)])
    assert s.exit_code == 0 and "Traceback" not in s.output, s.output
    end = contracts_end(d)
    f = runner.invoke(app, ["forecast", "--data", str(d), "--start", str(end.date()),
                            "--end", str((end + pd.Timedelta(days=91)).date()), "--json"])
    assert f.exit_code == 0 and "Traceback" not in f.output, f.output


def test_60_accounts_train_score_forecast_on_the_fallbacks(book60, isolated_home):
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--data", str(book60)])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    said = " ".join(r.output.split())   # rich wraps long lines
    # the threshold and what was chosen are printed
    assert "the full models need at least 200 and 30" in said
    assert "churn:" in said and "fallback PooledChurnModel" in said
    assert "equal-weight scorecard" in said
    assert "survival: survival skipped" in said
    churn_v = store.model_versions("churn")[0]
    assert "champion" in churn_v["aliases"] and churn_v["fallback"].startswith("pooled churn rates by segment")
    assert churn_v["data_profile"]["tables"]["accounts"]["rows"] == 60 and churn_v["data_hash"]
    assert store.model_versions("health")[0]["fallback"]
    assert store.model_versions("survival") == []
    score_and_forecast(runner, book60)


def test_a_book_with_one_year_of_history_validates_on_its_later_half_and_serves(tmp_path_factory, isolated_home):
    """One year of data: the last 9 months would hold every renewal decision, leaving nothing to train on, and
    `score` and `forecast` would have no champion. The split moves to the renewal date that halves the decisions
    (still time-ordered); the fallbacks train, and score and forecast work."""
    d = simulated(tmp_path_factory, 60, years=1)
    ctx = TrainingContext.build(open_source(d))
    due = ctx.decision_rows().drop_duplicates(["account_id", "renewal_date"])["renewal_date"]
    fixed = (pd.Timestamp(ctx.as_of) - pd.DateOffset(months=ctx.validation_months))
    assert (due < fixed).sum() < len(due) / 2                       # the fixed split leaves too little to train
    train, valid = ctx.split(ctx.decision_rows())
    n_train, n_valid = (x.drop_duplicates(["account_id", "renewal_date"]).shape[0] for x in (train, valid))
    assert abs(n_train - n_valid) <= 1 + due.duplicated().sum() and n_train > 0
    assert train.renewal_date.max() < pd.Timestamp(ctx.validation_start) <= valid.renewal_date.min()
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--data", str(d)])
    assert r.exit_code == 0 and "fallback PooledChurnModel" in " ".join(r.output.split()), r.output
    assert "champion" in store.model_versions("churn")[0]["aliases"]
    score_and_forecast(runner, d)


def test_200_accounts_pooled_churn_and_equal_weight_health(book200, isolated_home):
    res = train_families(open_source(book200), policy=PromotionPolicy())
    churn, health, survival = res["churn"], res["health"], res["survival"]
    choice = churn.detail["model_choice"]
    assert choice["small"] and choice["chosen"] == "PooledChurnModel" and churn.fallback
    assert choice["decisions"] < choice["min_decisions"] or choice["churns"] < choice["min_churns"]
    # registered and served like any churn model, flagged in MLflow
    assert churn.registration.alias == "champion"
    mv = store.read_champion("churn")
    assert mv.tags["fallback"] == churn.fallback
    est = mv.load()
    rows = churn.validation.rows
    p = est.predict_proba(rows[list(est.feature_names_in_)])[:, 1]
    e = est.explain(rows[list(est.feature_names_in_)])
    assert ((p > 0) & (p < 1)).all()
    np.testing.assert_allclose(e.sum(axis=1), np.log(p / (1 - p)), atol=1e-9)   # drivers still work
    assert health.detail["weighting"] == "equal" and health.fallback
    assert health.registration.decision == "promoted"
    assert isinstance(survival, Skipped) and survival.decision == "skipped" and "small book" in survival.reason


MINIMAL = {"accounts": ["account_id"], "contracts": ["contract_id", "account_id", "start_date", "end_date", "arr"]}


@pytest.mark.parametrize("columns", ["all", "minimal"])
def test_accounts_and_contracts_only(book200, tmp_path, isolated_home, columns):
    """Only accounts and contracts; "minimal": only the columns no fallback can stand in for (no segment,
    created_at, seats, renewed_by...): the same renewal decisions and churns (successors from the dates)."""
    d, whole = tmp_path / "ac", tmp_path / "whole"
    for folder in (d, whole):
        folder.mkdir()
    for t in ("accounts", "contracts"):
        df = pd.read_parquet(book200 / f"{t}.parquet")
        df.to_parquet(whole / f"{t}.parquet", index=False)
        (df[MINIMAL[t]] if columns == "minimal" else df).to_parquet(d / f"{t}.parquet", index=False)
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--data", str(d)])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    said = " ".join(r.output.split())
    assert "fallback RetentionChurnModel" in said
    full = TrainingContext.build(open_source(whole)).book_size()
    assert f"{full.decisions} renewal decisions and {full.churns} churns" in said
    assert "health:" in said and "survival:" in said
    v = store.model_versions("churn")[0]
    assert "champion" in v["aliases"] and "sBG" in v["fallback"]
    assert store.model_versions("health") == []
    score_and_forecast(runner, d)


def test_800_accounts_full_models_and_a_robust_health_fit(tmp_path_factory, isolated_home):
    """800 × 2 years is above the thresholds: the full churn model, and health keeps its plausible components
    (the issue saw 4 of 5 dropped and a 0.42 AUC champion) and is not worse than its baselines."""
    ctx = TrainingContext.build(open_source(simulated(tmp_path_factory, 800)), policy=PromotionPolicy())
    assert not ctx.book_size().small
    est, _, choice = churn_pipeline.choose_model(ctx)
    assert choice["chosen"] == "ChurnClassifier" and choice["fallback"] is None
    health = train_health(ctx)
    assert health.detail["weighting"] != "equal" and health.fallback is None
    kept = health.detail["used_components"]
    assert len(kept) >= 3 and set(kept) == set(health.detail["final_model"]["components"]), health.detail["flagged"]
    assert health.registration.decision == "promoted"
    assert health.metrics["auc"] > 0.6
    for name, b in health.registration.checks["baselines"].items():
        assert b["ci"][1] is None or b["ci"][1] >= 0, (name, b)

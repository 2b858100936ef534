"""The promotion guard on real data, real MLflow (sqlite) and real fits: broken exports never replace a good
champion (docs/operations.md).

One good training of the churn family on a 150-account book (its pooled fallback: a fast real fit), then each
broken export of that same book: tickets emptied to their header, usage of most accounts lost, a shrunk date
range, a moved base rate; the override; a registry that cannot be read; a challenger worse than the baseline.
"""
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from csforecast.cli import app
from csforecast.config import reset_settings
from csforecast.data.sources import open_source
from csforecast.pipelines import churn
from csforecast.pipelines.champion import PromotionPolicy, log_and_register
from csforecast.pipelines.context import TrainingContext
from csforecast.pipelines.train import Skipped, train_families
from csforecast.scoring import families
from csforecast.tracking import store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp("guard150")
    simulate_portfolio(150, 2, seed=7).write(d, fmt="csv")
    return d


@pytest.fixture(scope="module")
def home(tmp_path_factory, good):
    """A home whose churn champion (v1) was trained on the good export."""
    h = tmp_path_factory.mktemp("guard-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CSFORECAST_HOME", str(h))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{h}/mlflow.db")
        reset_settings()
        res = train_families(open_source(good), families=["churn"], policy=PromotionPolicy())["churn"]
        assert res.registration.alias == "champion" and res.registration.version == "1"
        yield h
    reset_settings()


@pytest.fixture()
def in_home(home, monkeypatch):
    monkeypatch.setenv("CSFORECAST_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow.db")
    reset_settings()
    yield home
    reset_settings()


def broken(good, tmp_path, table, change):
    """A copy of the good export with ``change(df)`` applied to ``table``."""
    d = tmp_path / f"broken-{table}"
    shutil.copytree(good, d, ignore=shutil.ignore_patterns("truth"))
    f = d / f"{table}.csv"
    change(pd.read_csv(f)).to_csv(f, index=False)
    return d


def champion() -> str:
    return store.read_champion("churn").version


def versions() -> list[str]:
    return [v["version"] for v in store.model_versions("churn")]


def blocked(d) -> Skipped:
    before = versions()
    res = train_families(open_source(d), families=["churn"], policy=PromotionPolicy())["churn"]
    assert isinstance(res, Skipped) and res.decision == "blocked", res
    assert champion() == "1" and versions() == before   # nothing trained, nothing registered, no alias moved
    return res


def test_tickets_emptied_to_header_blocks_and_cli_says_so(good, tmp_path, in_home):
    d = broken(good, tmp_path, "tickets", lambda df: df.iloc[0:0])
    assert len((d / "tickets.csv").read_text().strip().splitlines()) == 1   # the header only
    res = blocked(d)
    assert [(c["table"], c["rule"]) for c in res.changes] == [("tickets", "emptied")]
    r = CliRunner().invoke(app, ["train", "--data", str(d), "--family", "churn"])
    assert r.exit_code == 2, r.output
    said = " ".join(r.output.split())   # rich wraps long lines
    assert "tickets had" in said and "now has none" in said and "--accept-data-change" in said
    assert "Traceback" not in r.output and champion() == "1"
    # validate warns about the same change while the champion exists
    v = CliRunner().invoke(app, ["validate", "--data", str(d), "--json"])
    assert "data_change" in v.output and "tickets had" in " ".join(v.output.split())


def test_usage_of_most_accounts_lost_blocks(good, tmp_path, in_home):
    def lose(df):
        keep = df["account_id"].drop_duplicates().sample(frac=0.3, random_state=1)
        return df[df["account_id"].isin(keep)]

    res = blocked(broken(good, tmp_path, "usage", lose))
    rules = {(c["table"], c["rule"]) for c in res.changes}
    assert ("usage", "accounts_lost") in rules and ("usage", "rows_lost") in rules
    assert "usage covers" in res.reason


def test_shrunk_date_range_blocks(good, tmp_path, in_home):
    def drop_first_half_year(df):
        d = pd.to_datetime(df["date"])
        return df[d >= d.min() + pd.Timedelta(days=180)]

    res = blocked(broken(good, tmp_path, "usage", drop_first_half_year))
    assert ("usage", "date_range_shrank") in {(c["table"], c["rule"]) for c in res.changes}
    assert not any(c["rule"] in ("rows_lost", "accounts_lost", "emptied") for c in res.changes)


def test_moved_base_rate_blocks(good, tmp_path, in_home):
    def unrenew(df):
        df = df.copy()
        renewed = df.index[df["renewed_by"].notna()]
        df.loc[renewed[: len(renewed) // 2], "renewed_by"] = np.nan
        return df

    res = blocked(broken(good, tmp_path, "contracts", unrenew))
    assert [(c["table"], c["rule"]) for c in res.changes] == [("label", "base_rate_moved")]


def test_accept_data_change_trains_and_records_the_override(good, tmp_path, in_home):
    d = broken(good, tmp_path, "tickets", lambda df: df.iloc[0:0])
    res = train_families(open_source(d), families=["churn"],
                         policy=PromotionPolicy(accept_data_change=True))["churn"]
    reg = res.registration
    assert reg.version is not None and reg.decision in ("promoted", "kept")
    mv = {v["version"]: v for v in store.model_versions("churn")}[reg.version]
    assert "tickets had" in mv["accept_data_change"]
    assert mv["data_profile"]["tables"]["tickets"]["rows"] == 0 and mv["data_hash"]
    # the margin rule still applied: the guard sentence gives the paired interval
    assert "interval" in reg.guard


def test_registry_error_refuses_instead_of_promoting(good, tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a sqlite database" * 100)
    monkeypatch.setenv("CSFORECAST_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    reset_settings()
    try:
        with pytest.raises(store.RegistryError, match="could not read the champion"):
            store.read_champion("churn")
        with pytest.raises(store.RegistryError):
            train_families(open_source(good), families=["churn"], policy=PromotionPolicy())
        r = CliRunner().invoke(app, ["train", "--data", str(good), "--family", "churn"])
        assert r.exit_code == 1 and "error:" in r.output and "Traceback" not in r.output, r.output
    finally:
        reset_settings()


def test_challenger_worse_than_baseline_is_refused(good, in_home):
    """A real model fitted on the inverted labels is worse than the segment base rate on its validation rows:
    refused whatever the champion, registered as challenger only."""
    before = champion()
    ctx = TrainingContext.build(open_source(good), policy=PromotionPolicy())
    train, _ = ctx.split(ctx.decision_rows())
    val = churn.validation_set(ctx)
    bad = churn.baseline(ctx)
    bad.fit(train[["segment"]], 1 - train["label_churn"].astype(int), decisions=train["contract_id"])
    case = churn.comparison(ctx, bad, val)
    with store.start_run("churn") as run:
        reg = log_and_register(families.get("churn"), bad, val.rows[["segment"]].head(5), run.info.run_id, case,
                               policy=ctx.policy)
    assert reg.decision == "refused" and reg.alias == "challenger", reg.guard
    assert "segment base rate" in reg.guard and "worse" in reg.guard
    assert champion() == before
    assert reg.checks["baselines"]["segment base rate"]["ci"][1] < 0

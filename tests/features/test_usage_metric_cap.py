"""Every usage metric a source carries is used, up to the documented cap chosen by coverage; `csforecast
features` names the ones left out (docs/operations.md, "Usage metrics")."""
import pandas as pd
import pytest
from typer.testing import CliRunner

from csforecast.cli import app
from csforecast.config import reset_settings
from csforecast.data.sources import open_source
from csforecast.features.snapshot import build_snapshots, usage_metric_choice


@pytest.fixture(scope="module")
def many_metrics(tmp_path_factory):
    """A 40-account year whose usage table carries 15 metrics: m00 covers every account, m14 the fewest."""
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp("metrics15")
    simulate_portfolio(40, 1, seed=3).write(d)
    u = pd.read_parquet(d / "usage.parquet")
    one = u[u["metric"] == u["metric"].iloc[0]]
    accounts = sorted(one["account_id"].unique())
    parts = [one[one["account_id"].isin(accounts[: len(accounts) - 2 * i])].assign(metric=f"m{i:02d}")
             for i in range(15)]
    pd.concat(parts, ignore_index=True).to_parquet(d / "usage.parquet", index=False)
    return d


def test_all_metrics_used_below_the_cap(many_metrics):
    used, left = usage_metric_choice(open_source(many_metrics))
    assert used == [f"m{i:02d}" for i in range(15)] and left == []
    snap = build_snapshots(open_source(many_metrics), [pd.Timestamp(pd.read_parquet(
        many_metrics / "usage.parquet")["date"].max()).date()])
    assert all(any(c.startswith(f"m{i:02d}_") for c in snap.columns) for i in range(15))


def test_the_cap_keeps_the_best_covered_and_features_names_the_rest(many_metrics, monkeypatch, tmp_path):
    used, left = usage_metric_choice(open_source(many_metrics), cap=12)
    assert used == [f"m{i:02d}" for i in range(12)] and left == ["m12", "m13", "m14"]
    monkeypatch.setenv("CSFORECAST_FEATURES__MAX_USAGE_METRICS", "12")
    reset_settings()
    try:
        end = pd.Timestamp(pd.read_parquet(many_metrics / "usage.parquet")["date"].max()).date()
        r = CliRunner().invoke(app, ["features", "--data", str(many_metrics), "--as-of", str(end),
                                     "--out", str(tmp_path / "f.parquet")])
    finally:
        reset_settings()
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())   # rich wraps long lines
    assert "3 left out" in said and "m12, m13, m14" in said
    cols = pd.read_parquet(tmp_path / "f.parquet").columns
    assert not any(c.startswith("m13_") for c in cols) and any(c.startswith("m11_") for c in cols)

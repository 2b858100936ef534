"""The feature builder cannot see the future: deleting or scrambling every row dated on or after the
as-of date leaves every feature identical."""
from datetime import date

import numpy as np
import pandas as pd
import pytest

from csforecast.data.sources import open_source
from csforecast.features.snapshot import build_snapshots, feature_columns, monthly_grid

DATE_COL = {"usage": "date", "tickets": "opened_at", "surveys": "responded_at", "touches": "date",
            "stakeholder_events": "date", "interventions": "date", "csm_sentiment": "recorded_at",
            "success_plans": "recorded_at"}
AS_OF = date(2025, 12, 1)


def _rewrite(src, dst, mode: str, as_of: date):
    """mode 'delete': drop rows dated >= as_of; 'scramble': replace their values with noise."""
    rng = np.random.default_rng(0)
    dst.mkdir()
    cut = pd.Timestamp(as_of)
    for p in src.glob("*.parquet"):
        df = pd.read_parquet(p)
        name = p.stem
        if name in DATE_COL:
            late = pd.to_datetime(df[DATE_COL[name]]) >= cut
            if mode == "delete":
                df = df[~late]
            else:
                for c in df.columns:
                    if c == DATE_COL[name] or c == "account_id":
                        continue
                    if pd.api.types.is_numeric_dtype(df[c]):
                        df.loc[late, c] = rng.integers(1, 5, late.sum()).astype(df[c].dtype)
                    elif c in ("priority",):
                        df.loc[late, c] = rng.choice(["P1", "P4"], late.sum())
                    elif c == "sentiment":
                        df.loc[late, c] = rng.choice(["red", "5"], late.sum())
            if name == "tickets":  # a ticket opened before as_of but closed after it: closure unknown then
                late_close = pd.to_datetime(df["closed_at"]) >= cut
                if mode == "delete":
                    df["closed_at"] = df["closed_at"].where(~late_close)
                    df["csat"] = df["csat"].where(~late_close)
                else:
                    df.loc[late_close, "closed_at"] = df.loc[late_close, "closed_at"] + pd.Timedelta(days=40)
                    df.loc[late_close, "csat"] = 1.0
        elif name == "contracts":
            future = pd.to_datetime(df["end_date"]) >= cut
            ended_succ = set(df.loc[~future, "renewed_by"].dropna())
            started_late = (pd.to_datetime(df["start_date"]) >= cut) & ~df["contract_id"].isin(ended_succ)
            if mode == "delete":
                df = df[~started_late].copy()
                future = pd.to_datetime(df["end_date"]) >= cut
                df["renewed_by"] = df["renewed_by"].astype(object).where(~future, None)
                df["churn_reason"] = df["churn_reason"].astype(object).where(~future, None)
            else:
                df.loc[started_late, "arr"] = 1.0
                df["churn_reason"] = df["churn_reason"].astype(object).where(~future, "scrambled")
        elif name == "accounts":
            if mode == "delete":
                df = df[pd.to_datetime(df["created_at"]) < cut]
        df.to_parquet(dst / p.name, index=False)


@pytest.mark.parametrize("mode", ["delete", "scramble"])
def test_no_leakage(small_portfolio, tmp_path, mode):
    full = build_snapshots(open_source(small_portfolio), [AS_OF], labels=False)
    _rewrite(small_portfolio, tmp_path / mode, mode, AS_OF)
    cut = build_snapshots(open_source(tmp_path / mode), [AS_OF], labels=False)
    assert len(full) > 100
    a, b = full.set_index("account_id").sort_index(), cut.set_index("account_id").sort_index()
    assert list(a.index) == list(b.index)
    for c in [c for c in a.columns]:
        x, y = a[c], b[c]
        if pd.api.types.is_numeric_dtype(x):
            assert np.allclose(x.astype(float), y.astype(float), equal_nan=True, rtol=1e-12, atol=1e-12), c
        else:
            assert x.astype(str).equals(y.astype(str)), c


def test_sentiment_and_value_are_the_latest_review_before_the_as_of_date(small_portfolio):
    """csm_sentiment / value_realised / roi_latest: the mean of the rows on the latest day in the 365 days
    strictly before as_of (a review on as_of itself is not seen); colours read red 1, yellow 3, green 5."""
    snap = build_snapshots(open_source(small_portfolio), [AS_OF], labels=False).set_index("account_id")
    cut = pd.Timestamp(AS_OF)
    sent = pd.read_parquet(small_portfolio / "csm_sentiment.parquet")
    plans = pd.read_parquet(small_portfolio / "success_plans.parquet")
    checked = 0
    for table, feats in ((sent, ("csm_sentiment",)), (plans, ("value_realised", "roi_latest"))):
        t = table.assign(day=pd.to_datetime(table["recorded_at"]))
        seen = t[(t["day"] < cut) & (t["day"] >= cut - pd.Timedelta(days=365))]
        last = seen[seen["day"] == seen.groupby("account_id")["day"].transform("max")]
        expect = pd.DataFrame({
            "csm_sentiment": last.get("sentiment", pd.Series(dtype=object)).map({"red": 1.0, "yellow": 3.0,
                                                                                  "green": 5.0}),
            "value_realised": last.get("goals_met", pd.Series(dtype=float)) / last.get("goals_total", np.nan),
            "roi_latest": last.get("roi", pd.Series(dtype=float)),
            "account_id": last["account_id"], "day": last["day"]}).groupby("account_id").mean()
        ids = [a for a in expect.index if a in snap.index]
        assert len(ids) > 20
        for f in feats:
            np.testing.assert_allclose(snap.loc[ids, f].astype(float), expect.loc[ids, f], equal_nan=True)
        days = "days_since_sentiment" if table is sent else "days_since_value_review"
        np.testing.assert_allclose(snap.loc[ids, days], (cut - expect.loc[ids, "day"]).dt.days)
        never = [a for a in snap.index if a not in expect.index]
        assert snap.loc[never, feats[0]].isna().all()
        checked += len(ids)
    assert checked > 50


def test_snapshot_grid_matches_single_snapshots(small_portfolio):
    src = open_source(small_portfolio)
    grid = monthly_grid(date(2025, 6, 1), date(2025, 8, 1))
    many = build_snapshots(src, grid, labels=False)
    one = build_snapshots(src, [grid[1]], labels=False)
    sub = many[many.as_of == pd.Timestamp(grid[1])].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub[one.columns], one, check_dtype=False)


def test_features_are_sane(small_portfolio):
    df = build_snapshots(open_source(small_portfolio), [AS_OF])
    feats = feature_columns(df)
    assert not any(c.startswith("label_") for c in feats)
    assert df["seat_utilisation"].between(0, 1.5).all()
    assert (df["days_to_renewal"] >= 0).all() and (df["tenure_days"] > 0).all()
    assert df["label_churn"].dropna().isin([0, 1]).all()
    # renewal outcomes after the data end are unknown, not "renewed"
    late = df["renewal_date"] >= pd.Timestamp("2026-10-01")
    assert df.loc[late, "label_churn"].isna().all()


def test_long_memory_usage_features_match_a_hand_computation(small_portfolio):
    """*_lifetime, *_ewm3m and *_ewm6m: daily means over complete months before as_of, each month weighted by
    its days with usage and (ewm) by 0.5 ** (age of the month's end in days / half-life)."""
    src = open_source(small_portfolio)
    df = build_snapshots(src, [AS_OF], labels=False).set_index("account_id")
    u = pd.read_parquet(small_portfolio / "usage.parquet")
    u["date"] = pd.to_datetime(u["date"])
    u = u[u["date"] < pd.Timestamp(AS_OF).replace(day=1)]  # complete months only (AS_OF is a 1st)
    u["month"] = u["date"].dt.to_period("M")
    checked = 0
    for acc in df.index[:25]:
        a = u[u["account_id"] == acc]
        if a.empty:
            continue
        days = a.groupby("month")["date"].nunique()
        tot = a[a["metric"] == "key_features_used"].groupby("month")["value"].sum().reindex(days.index, fill_value=0)
        age = np.array([(pd.Timestamp(AS_OF) - (m + 1).start_time).days for m in days.index], dtype=float)
        for name, hl in (("ewm3m", 91.0), ("ewm6m", 182.0)):
            w = 0.5 ** (age / hl)
            assert df.loc[acc, f"key_features_used_{name}"] == pytest.approx((w * tot).sum() / (w * days).sum())
        assert df.loc[acc, "key_features_used_lifetime"] == pytest.approx(tot.sum() / days.sum())
        seats = df.loc[acc, "seats"]
        au = a[a["metric"] == "active_users"]["value"].sum() / days.sum()
        assert df.loc[acc, "seat_utilisation_lifetime"] == pytest.approx(au / seats)
        checked += 1
    assert checked >= 10


def test_trailing_counts_scale_to_their_window_and_tickets_per_seat(small_portfolio):
    """A 365-day count on a snapshot with less history than that is scaled up to the full window; per-seat
    ticket rates are the counts per 100 seats."""
    from csforecast.features.snapshot import data_start

    src = open_source(small_portfolio)
    start = data_start(src)
    early = start + pd.Timedelta(days=200).to_pytimedelta()
    df = build_snapshots(src, [early], labels=False)
    t = pd.read_parquet(small_portfolio / "tickets.parquet")
    t["opened_at"] = pd.to_datetime(t["opened_at"])
    raw = t[t["opened_at"] < pd.Timestamp(early)].groupby("account_id").size()
    got = df.set_index("account_id")["tickets_365d"]
    common = raw.index.intersection(got.index)
    assert len(common) >= 5
    covered = (pd.Timestamp(early) - pd.Timestamp(start)).days
    np.testing.assert_allclose(got[common], raw[common] * 365 / covered)
    per_seat = df["tickets_90d_per_100_seats"].to_numpy()
    np.testing.assert_allclose(per_seat, 100 * df["tickets_90d"] / df["seats"].where(df["seats"] > 0))

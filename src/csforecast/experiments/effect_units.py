"""The units of a playbook effect analysis (the accounts that got it, or could have, on their assignment date)
and their outcomes: renewal at the first renewal after assignment, usage change around it, time to churn."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from csforecast.data.sources import Source
from csforecast.errors import InputError

__all__ = ["EffectError", "Units", "build_units", "usage_change"]


class EffectError(InputError, ValueError):
    """The effect analysis cannot run on this data (no interventions, unknown playbook, too few units)."""


@dataclass
class Units:
    frame: pd.DataFrame           # account_id, index_date, treated, seats, renewal_date, renewed, known, T, E
    randomised: bool
    arms: list[str]
    n_assigned: int
    n_not_customers: int
    comparison: str


def build_units(source: Source, playbook: str, renewal_lag_days: int = 0, seed: int = 0) -> Units:
    from csforecast.features.snapshot import account_churn_dates, data_end

    if not source.has("interventions"):
        raise EffectError("the source has no interventions table (account_id, date, playbook, arm)")
    iv = source.frame("interventions")
    known = sorted(iv["playbook"].dropna().unique())
    iv = iv[iv["playbook"] == playbook]
    if iv.empty:
        raise EffectError(f"no interventions for playbook {playbook!r}; playbooks in the data: {', '.join(known)}")
    arms = sorted(iv["arm"].dropna().unique())
    randomised = "treatment" in arms and "control" in arms
    if "treatment" not in arms:
        raise EffectError(f"playbook {playbook!r} has no treatment arm (arms: {', '.join(arms)})")
    first = iv.sort_values(["date", "account_id"]).groupby("account_id", as_index=False).first()
    end = pd.Timestamp(data_end(source))
    if randomised:
        u = first[first["arm"].isin(["treatment", "control"])].copy()
        comparison = "randomised control arm"
    else:
        tr = first[first["arm"] == "treatment"]
        if "none" in arms:
            ctl = first[first["arm"] == "none"]
            comparison = "accounts in arm 'none' at their own dates"
        else:
            accounts = source.frame("accounts")[["account_id"]]
            others = accounts[~accounts["account_id"].isin(first["account_id"])].copy()
            dates = tr["date"].to_numpy()
            if len(np.unique(dates)) == 1:
                others["date"] = dates[0]
                comparison = f"every other customer on {pd.Timestamp(dates[0]).date()}"
            else:
                rng = np.random.default_rng(seed)
                others["date"] = rng.choice(dates, size=len(others))
                comparison = "every other customer, at dates drawn from the treated accounts' dates"
            others["arm"] = "none"
            ctl = others
        u = pd.concat([tr[["account_id", "date", "arm"]], ctl[["account_id", "date", "arm"]]], ignore_index=True)
    u = u.rename(columns={"date": "index_date"})[["account_id", "index_date", "arm"]]
    u["index_date"] = pd.to_datetime(u["index_date"])
    u["treated"] = u["arm"] == "treatment"
    n_assigned = int(len(u))

    c = source.frame("contracts")[["contract_id", "account_id", "start_date", "end_date", "seats", "renewed_by"]]
    m = u[["account_id", "index_date"]].merge(c, on="account_id")
    cover = m[(m["start_date"] <= m["index_date"]) & (m["end_date"] > m["index_date"])]
    seats = cover.groupby("account_id")["seats"].sum()
    u = u[u["account_id"].isin(seats.index)].copy()
    n_not = n_assigned - len(u)
    u["seats"] = u["account_id"].map(seats).astype(float)

    lag = pd.Timedelta(days=int(renewal_lag_days))
    m = m.assign(ref=m["index_date"] + lag)
    cov2 = m[(m["start_date"] <= m["ref"]) & (m["end_date"] > m["ref"])]
    ren = cov2.groupby("account_id")["end_date"].min().rename("renewal_date")
    u = u.merge(ren, left_on="account_id", right_index=True, how="left")
    due = c.merge(u[["account_id", "renewal_date"]], left_on=["account_id", "end_date"],
                  right_on=["account_id", "renewal_date"])
    renewed = due.groupby("account_id")["renewed_by"].apply(lambda s: bool(s.notna().any()))
    u["renewed"] = u["account_id"].map(renewed)
    u["known"] = u["renewal_date"].notna() & (u["renewal_date"] < end)

    churn = account_churn_dates(source.frame("contracts"), end)
    cd = pd.to_datetime(u["account_id"].map(churn))
    event = cd.notna() & (cd > u["index_date"])
    u["E"] = event.astype(int)
    u["T"] = np.where(event, (cd - u["index_date"]).dt.days, (end - u["index_date"]).dt.days).astype(float)
    u = u[u["T"] > 0].reset_index(drop=True)
    return Units(u, randomised, arms, n_assigned, n_not, comparison)


def usage_change(source: Source, units: pd.DataFrame, metric: str, window_days: int) -> pd.DataFrame:
    """Per unit: before / after window means of the metric and their difference (NaN when too few days)."""
    import ibis

    raw = "active_users" if metric == "seat_utilisation" else metric
    if not source.has("usage"):
        raise EffectError("the source has no usage table")
    t = source.table("usage")
    metrics = set(t.select("metric").distinct().to_pandas()["metric"])
    if raw not in metrics:
        raise EffectError(f"usage metric {raw!r} is not in the usage table (metrics: {', '.join(sorted(metrics))})")
    w = pd.Timedelta(days=int(window_days))
    lo, hi = units["index_date"].min() - w, units["index_date"].max() + w
    ids = list(units["account_id"].unique())
    df = t.filter([t.metric == raw, t.account_id.isin(ids), t.date >= ibis.literal(lo.date()),
                   t.date < ibis.literal(hi.date())]).select("account_id", "date", "value").to_pandas()
    df["date"] = pd.to_datetime(df["date"])
    df = df.merge(units[["account_id", "index_date", "seats"]], on="account_id")
    if metric == "seat_utilisation":
        df["value"] = df["value"] / df["seats"].where(df["seats"] > 0)
    before = df[(df["date"] >= df["index_date"] - w) & (df["date"] < df["index_date"])]
    after = df[(df["date"] >= df["index_date"]) & (df["date"] < df["index_date"] + w)]
    b = before.groupby("account_id")["value"].agg(["mean", "size"])
    a = after.groupby("account_id")["value"].agg(["mean", "size"])
    out = units[["account_id"]].copy()
    out["before"] = out["account_id"].map(b["mean"])
    out["after"] = out["account_id"].map(a["mean"])
    enough = (out["account_id"].map(b["size"]).fillna(0) >= window_days / 3) & \
             (out["account_id"].map(a["size"]).fillna(0) >= window_days / 3)
    out["change"] = np.where(enough, out["after"] - out["before"], np.nan)
    return out

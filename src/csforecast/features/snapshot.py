"""Point-in-time feature snapshots, written as Ibis expressions (DuckDB by default, any Ibis backend).

For an as-of date D, a snapshot has one row per account that is a customer on the day before D (a contract
with start_date < D <= end_date) and every feature uses only rows dated strictly before D. Outcomes of
renewals on or after D are never read for features (a successor link `renewed_by` is used only when the
contract ended before D). Labels (`label_*` columns) do look ahead; they are what the models learn.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import ibis
import numpy as np
import pandas as pd

from csforecast.config import get_settings
from csforecast.data.contract import started
from csforecast.data.sources import Source
from csforecast.diskcache import DiskCache, code_digest, key_digest

USAGE_WINDOW = 90
DAYS_SINCE_CAP = {"login": USAGE_WINDOW + 1, "touch": 366, "exec": 731, "champion": 731, "nps": 731}


def _days(a, b):
    """Whole days from b to a (a - b) for Ibis date values."""
    return a.delta(b, unit="day").cast("float64")


def _iv(days: int):
    return ibis.interval(days=days)


# trailing-count features and their window in days: rescaled by window coverage (see _finish)
COUNT_WINDOWS = {"tickets_365d": 365, "nps_count_365d": 365, "csat_count_365d": 365, "exec_meetings_365d": 365,
                 "qbrs_365d": 365, "champion_left_365d": 365, "ticket_csat_count_180d": 180}


PER_SEAT = ("tickets_90d", "tickets_p1_90d", "tickets_365d", "open_tickets")  # also given per 100 seats


def data_start(source: Source) -> date | None:
    """The earliest dated activity (usage, tickets, surveys, touches) in the source, or None."""
    cands = []
    for name, col in (("usage", "date"), ("tickets", "opened_at"), ("surveys", "responded_at"),
                      ("touches", "date")):
        if source.has(name):
            v = source.table(name)[col].min().to_pyarrow().as_py()
            if v is not None:
                cands.append(pd.Timestamp(v).date())
    return min(cands) if cands else None


def data_end(source: Source) -> date:
    """The day after the latest dated activity in the source: renewals due before it have a known outcome.

    A contract that starts after today (a renewal booked ahead; validation's `booked_ahead`) is not activity:
    the data cannot end in the future, and a renewal due before that start is not known yet."""
    cands = []
    for name, col in (("usage", "date"), ("tickets", "opened_at"), ("surveys", "responded_at"),
                      ("touches", "date"), ("contracts", "start_date")):
        if source.has(name):
            t = source.table(name)
            if name == "contracts":
                t = t.filter(started(t[col]))
            v = t[col].max().to_pyarrow().as_py()
            if v is not None:
                cands.append(v)
    last = max(cands) if cands else date.today()
    last = last.date() if hasattr(last, "date") and not isinstance(last, date) else last
    return last + timedelta(days=1)


def usage_metric_choice(source: Source, cap: int | None = None) -> tuple[list[str], list[str]]:
    """(metrics used as features, metrics left out), both sorted by name. Every usage metric is used up to
    ``cap`` (default: the ``features.max_usage_metrics`` setting); above it, the ``cap`` metrics that cover the
    most accounts (then the most rows, then by name) are used and the rest are left out (docs/operations.md, "Usage metrics")."""
    if not source.has("usage"):
        return [], []
    if cap is None:
        cap = get_settings().features.max_usage_metrics
    u = source.table("usage")
    u = u.filter(u.metric.notnull())
    cov = (u.group_by("metric").aggregate(accounts=u.account_id.nunique(), n=u.count())
           .order_by([ibis.desc("accounts"), ibis.desc("n"), "metric"]).to_pandas())
    names = cov["metric"].astype(str).tolist()
    return sorted(names[:cap]), sorted(names[cap:])


def usage_metrics(source: Source) -> list[str]:
    """The usage metrics used as features (:func:`usage_metric_choice`)."""
    return usage_metric_choice(source)[0]


def _grid(as_of: Sequence[date]) -> ibis.Table:
    return ibis.memtable(pd.DataFrame({"as_of": pd.to_datetime(sorted(set(as_of))).date}),
                         schema={"as_of": "date"})


def _contract_features(src: Source, g: ibis.Table) -> ibis.Table:
    c = src.table("contracts")
    act = g.join(c, [c.start_date < g.as_of, c.end_date >= g.as_of])
    # the account's current contract: the earliest-started active one (ties: the smallest contract_id), chosen
    # by rank so that every engine picks the same row whatever order it reads rows in
    key = ["account_id", "as_of"]
    act = act.mutate(renewal_date=act.end_date.min().over(group_by=key),
                     _rank=ibis.row_number().over(group_by=key, order_by=[act.start_date, act.contract_id]))
    first = act._rank == 0
    cur = act.group_by(key).aggregate(
        renewal_date=act.renewal_date.max(),
        contract_id=act.contract_id.max(where=first),
        arr=act.arr.sum(),
        seats=act.seats.sum(),
        n_active_contracts=act.count(),
        term_days=_days(act.end_date, act.start_date).max(where=first),
        # (a float literal is a DECIMAL on Spark: cast, so every engine gives a float64 column)
        auto_renew=ibis.cases((act.auto_renew, 1.0), (~act.auto_renew, 0.0)).max(where=first).cast("float64"),
        contract_age_days=_days(act.as_of, act.start_date).max(),
    )
    hist = g.join(c, c.start_date < g.as_of)
    ended = hist.end_date < hist.as_of
    past = hist.group_by(key).aggregate(
        first_start=hist.start_date.min(),
        renewals_so_far=hist.renewed_by.nunique(where=ended & hist.renewed_by.notnull()).cast("float64"),
    )
    # ARR change at each renewal: successor ARR vs the ARR of every contract it succeeds
    prev = c.filter(c.renewed_by.notnull()).group_by("renewed_by").aggregate(prev_arr=c.arr.sum())
    succ = c.select(succ_id="contract_id", succ_arr="arr", succ_start="start_date")
    owner = c.select(cid="contract_id", account_id="account_id")
    ren = prev.join(succ, prev.renewed_by == succ.succ_id)
    ren = ren.join(owner, ren.succ_id == owner.cid).select("account_id", "prev_arr", "succ_arr", "succ_start",
                                                           "succ_id")
    rj = g.join(ren, ren.succ_start < g.as_of)
    # the latest renewal (ties: the largest successor contract_id)
    rj = rj.mutate(_rank=ibis.row_number().over(group_by=key, order_by=[ibis.desc(rj.succ_start),
                                                                         ibis.desc(rj.succ_id)]))
    last = rj.group_by(key).aggregate(
        last_arr_change=((rj.succ_arr / rj.prev_arr.nullif(0)) - 1).max(where=rj._rank == 0))
    out = cur.left_join(past, key).drop("account_id_right", "as_of_right")
    out = out.left_join(last, key).drop("account_id_right", "as_of_right")
    return out.mutate(tenure_days=_days(out.as_of, out.first_start),
                      days_to_renewal=_days(out.renewal_date, out.as_of)).drop("first_start")


def _usage_features(src: Source, g: ibis.Table, metrics: list[str], lo: date, hi: date) -> ibis.Table | None:
    if not metrics:
        return None
    u = src.table("usage")
    u = u.filter(u.date >= lo - timedelta(days=USAGE_WINDOW), u.date < hi, u.metric.isin(metrics))
    # one row per account-day with a column per metric: the range join below then carries 1/len(metrics)
    # of the rows (NULL = no row for that metric that day)
    wide = u.group_by(["account_id", "date"]).aggregate(
        **{_slug(m): u.value.sum(where=u.metric == m) for m in metrics})
    j = g.join(wide, [wide.date < g.as_of, wide.date >= g.as_of - _iv(USAGE_WINDOW)])
    age = _days(j.as_of, j.date)           # 1 .. 90
    x = -age
    aggs = {}
    for m in metrics:
        k = _slug(m)
        v = j[k]
        has = v.notnull()
        aggs[f"{k}_7d"] = v.sum(where=age <= 7) / 7.0
        aggs[f"{k}_30d"] = v.sum(where=age <= 30) / 30.0
        aggs[f"{k}_prev30d"] = v.sum(where=(age > 30) & (age <= 60)) / 30.0
        aggs[f"{k}_90d"] = v.sum() / 90.0
        # least-squares slope of value on day over the window (per day), from sums
        aggs[f"_{k}_n"] = v.count().cast("float64")
        aggs[f"_{k}_sx"] = x.sum(where=has)
        aggs[f"_{k}_sy"] = v.sum()
        aggs[f"_{k}_sxx"] = (x * x).sum(where=has)
        aggs[f"_{k}_sxy"] = (x * v).sum()
    if "logins" in metrics:
        aggs["_last_login_age"] = age.min(where=j["logins"] > 0)
    return j.group_by(["account_id", "as_of"]).aggregate(**aggs)


def _long_usage_features(src: Source, g: ibis.Table, metrics: list[str]) -> ibis.Table | None:
    """Trailing 6- and 12-month daily means per metric, from complete calendar months before as_of
    (pre-aggregated by month, so long windows stay cheap)."""
    if not metrics:
        return None
    u = src.table("usage").filter(lambda t: t.metric.isin(metrics))
    month = u.date.truncate("M")
    mon = u.mutate(month=month).group_by(["account_id", "metric", "month"]).aggregate(total=u.value.sum())
    mon = mon.mutate(month_end=mon.month + ibis.interval(months=1))
    j = g.join(mon, [mon.month_end <= g.as_of, mon.month >= g.as_of - _iv(366)])
    recent = j.month >= j.as_of - _iv(183)
    aggs = {}
    for m in metrics:
        k = _slug(m)
        is_m = j.metric == m
        aggs[f"{k}_6m"] = j.total.sum(where=is_m & recent) / 182.5
        aggs[f"{k}_12m"] = j.total.sum(where=is_m) / 365.0
        aggs[f"_{k}_months"] = j.month.nunique(where=is_m).cast("float64")
    return j.group_by(["account_id", "as_of"]).aggregate(**aggs)


EWM_HALF_LIVES = {"ewm3m": 91.0, "ewm6m": 182.0}  # feature suffix -> half-life in days


def _ewm_usage_features(src: Source, g: ibis.Table, metrics: list[str]) -> ibis.Table | None:
    """Long-memory usage levels from every complete calendar month before as_of: exponentially weighted
    daily means (half-lives 3 and 6 months, weight by the month's age at its end) and the lifetime daily
    mean. Each month weighs by the days the account had usage rows in it, so months before the account was a
    customer (or after it left) do not dilute the mean."""
    if not metrics:
        return None
    u = src.table("usage").filter(lambda t: t.metric.isin(metrics))
    u = u.mutate(month=u.date.truncate("M"))
    mon = u.group_by(["account_id", "month"]).aggregate(
        days=u.date.nunique().cast("float64"), **{f"t_{_slug(m)}": u.value.sum(where=u.metric == m) for m in metrics})
    mon = mon.mutate(month_end=mon.month + ibis.interval(months=1))
    j = g.join(mon, [mon.month_end <= g.as_of])
    age = _days(j.as_of, j.month_end)
    weights = {name: (age * (-np.log(2.0) / hl)).exp() for name, hl in EWM_HALF_LIVES.items()}
    aggs = {"_life_days": j.days.sum()}
    for name, w in weights.items():
        aggs[f"_{name}_days"] = (w * j.days).sum()
    for m in metrics:
        k = _slug(m)
        t = j[f"t_{k}"].fill_null(0.0)
        aggs[f"_{k}_life"] = t.sum()
        for name, w in weights.items():
            aggs[f"_{k}_{name}"] = (w * t).sum()
    return j.group_by(["account_id", "as_of"]).aggregate(**aggs)


def _ticket_features(src: Source, g: ibis.Table) -> ibis.Table | None:
    if not src.has("tickets"):
        return None
    t = src.table("tickets")
    j = g.join(t, [t.opened_at < g.as_of, t.opened_at >= g.as_of - _iv(365)])
    age = _days(j.as_of, j.opened_at)
    closed_before = j.closed_at.notnull() & (j.closed_at < j.as_of)
    res_days = _days(j.closed_at, j.opened_at)
    recent = age <= 180
    return j.group_by(["account_id", "as_of"]).aggregate(
        tickets_30d=(age <= 30).cast("float64").sum(),
        tickets_90d=(age <= 90).cast("float64").sum(),
        tickets_p1_30d=((age <= 30) & (j.priority == "P1")).cast("float64").sum(),
        tickets_p1_90d=((age <= 90) & (j.priority == "P1")).cast("float64").sum(),
        tickets_p2_90d=((age <= 90) & (j.priority == "P2")).cast("float64").sum(),
        tickets_365d=j.count().cast("float64"),
        open_tickets=(~closed_before).cast("float64").sum(),
        mean_resolution_days_180d=res_days.mean(where=closed_before & recent),
        ticket_csat_180d=j.csat.mean(where=closed_before & recent & j.csat.notnull()),
        ticket_csat_count_180d=(closed_before & recent & j.csat.notnull()).cast("float64").sum(),
    )


def _survey_features(src: Source, g: ibis.Table) -> ibis.Table | None:
    """NPS and CSAT features. The latest response (`nps_latest`, `csat_latest`) is the mean score of the
    account's responses of that kind on the latest day it has any: several responses often share a day, and
    taking one of them would depend on the order an engine reads rows in."""
    if not src.has("surveys"):
        return None
    s = src.table("surveys")
    j = g.join(s, [s.responded_at < g.as_of, s.responded_at >= g.as_of - _iv(730)])
    age = _days(j.as_of, j.responded_at)
    nps, csat = j.kind == "nps", j.kind == "csat"
    y = age <= 365
    key = ["account_id", "as_of"]
    feats = j.group_by(key).aggregate(
        _nps_day=j.responded_at.max(where=nps),
        days_since_nps=age.min(where=nps),
        nps_mean_365d=j.score.mean(where=nps & y),
        nps_count_365d=(nps & y).cast("float64").sum(),
        _promoters=(nps & y & (j.score >= 9)).cast("float64").sum(),
        _detractors=(nps & y & (j.score <= 6)).cast("float64").sum(),
        _csat_day=j.responded_at.max(where=csat),
        csat_count_365d=(csat & y).cast("float64").sum(),
        respondent_roles_365d=j.respondent_role.nunique(where=y).cast("float64"),
    )
    daily = s.group_by(["account_id", "kind", "responded_at"]).aggregate(day_score=s.score.mean())
    for kind, day, name in (("nps", "_nps_day", "nps_latest"), ("csat", "_csat_day", "csat_latest")):
        d = daily.filter(daily.kind == kind).select(_aid="account_id", _day="responded_at", **{name: "day_score"})
        feats = feats.left_join(d, [feats.account_id == d._aid, feats[day] == d._day]).drop("_aid", "_day", day)
    return feats


def _touch_features(src: Source, g: ibis.Table) -> ibis.Table | None:
    if not src.has("touches"):
        return None
    t = src.table("touches")
    j = g.join(t, [t.date < g.as_of, t.date >= g.as_of - _iv(730)])
    age = _days(j.as_of, j.date)
    ex = j.kind == "exec_meeting"
    return j.group_by(["account_id", "as_of"]).aggregate(
        touches_90d=(age <= 90).cast("float64").sum(),
        touches_prev90d=((age > 90) & (age <= 180)).cast("float64").sum(),
        days_since_touch=age.min(),
        exec_meetings_365d=(ex & (age <= 365)).cast("float64").sum(),
        days_since_exec_meeting=age.min(where=ex),
        qbrs_365d=((j.kind == "qbr") & (age <= 365)).cast("float64").sum(),
    )


def _stakeholder_features(src: Source, g: ibis.Table) -> ibis.Table | None:
    if not src.has("stakeholder_events"):
        return None
    e = src.table("stakeholder_events")
    j = g.join(e, [e.date < g.as_of, e.date >= g.as_of - _iv(730)])
    age = _days(j.as_of, j.date)
    champ = j.kind == "champion_left"
    return j.group_by(["account_id", "as_of"]).aggregate(
        days_since_champion_left=age.min(where=champ),
        days_since_stakeholder_change=age.min(),
        champion_left_365d=(champ & (age <= 365)).cast("float64").sum(),
    )


def _latest_review(src: Source, table: str, values: dict, days_name: str, g: ibis.Table) -> ibis.Table | None:
    """Per account and as-of date: ``values`` (name -> expression on the table's rows) as the mean over the
    rows of the latest day with any in the 365 days before as_of (several rows on one day are averaged, as
    the latest survey response is), and ``days_name``: days since that day."""
    if not src.has(table):
        return None
    t = src.table(table)
    j = g.join(t, [t.recorded_at < g.as_of, t.recorded_at >= g.as_of - _iv(365)])
    key = ["account_id", "as_of"]
    feats = j.group_by(key).aggregate(_day=j.recorded_at.max())
    feats = feats.mutate(**{days_name: _days(feats.as_of, feats._day)})
    daily = t.group_by(["account_id", "recorded_at"]).aggregate(**{k: f(t).mean() for k, f in values.items()})
    daily = daily.rename(_aid="account_id", _d="recorded_at")
    return feats.left_join(daily, [feats.account_id == daily._aid, feats._day == daily._d]).drop("_aid", "_d",
                                                                                                 "_day")


def sentiment_scale(t: ibis.Table):
    """A CSM sentiment on 1-5: red 1, yellow 3, green 5, or the number given (1-5); NULL otherwise."""
    from csforecast.data.contract import SENTIMENT_WORDS

    word = t.sentiment.lower()   # typed text: already trimmed
    number = word.try_cast("float64")
    return ibis.cases(*((word == w, v) for w, v in SENTIMENT_WORDS.items()),
                      else_=ibis.ifelse((number >= 1) & (number <= 5), number, ibis.null().cast("float64")))


def _sentiment_features(src: Source, g: ibis.Table) -> ibis.Table | None:
    """The CSM's latest sentiment (1-5) in the 365 days before as_of and the days since it was recorded."""
    return _latest_review(src, "csm_sentiment", {"csm_sentiment": sentiment_scale}, "days_since_sentiment", g)


def _value_features(src: Source, g: ibis.Table) -> ibis.Table | None:
    """Value realised at the latest success-plan review in the 365 days before as_of: the share of goals met
    (NULL for a plan with no goals), the ROI when measured, and the days since the review."""
    def share(t):
        return ibis.ifelse(t.goals_total > 0, t.goals_met.cast("float64") / t.goals_total.cast("float64"),
                           ibis.null().cast("float64"))
    return _latest_review(src, "success_plans", {"value_realised": share, "roi_latest": lambda t: t.roi},
                          "days_since_value_review", g)


def _slug(metric: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(metric).lower()).strip("_")


@dataclass(frozen=True)
class SnapshotPlan:
    """A snapshot as one Ibis expression on the source's engine (`expr`: one row per account and as-of date,
    raw sums and counts) and what turns its rows into features (`finish`). `finish` is row-wise, so it can run
    on any slice of the rows, e.g. per Spark partition next to the models (scoring/spark.py)."""
    expr: ibis.Table
    metrics: tuple[str, ...]
    history_start: date | None

    def finish(self, raw: pd.DataFrame) -> pd.DataFrame:
        return _finish(raw, list(self.metrics), self.history_start)


def snapshot_plan(source: Source, as_of: Iterable[date] | date) -> SnapshotPlan:
    """The snapshot expression for the as-of dates (see `build_snapshots`) and its finishing step."""
    dates = [as_of] if isinstance(as_of, date) else list(as_of)
    dates = sorted({pd.Timestamp(d).date() for d in dates})
    if not dates:
        raise ValueError("no as-of dates")
    g = _grid(dates)
    metrics = usage_metrics(source)
    base = _contract_features(source, g)
    a = source.table("accounts")
    base = base.join(a.select("account_id", "segment", "industry", "region", "csm_id", "created_at"),
                     "account_id").filter(lambda t: t.created_at < t.as_of).drop("created_at")
    parts = [_usage_features(source, g, metrics, dates[0], dates[-1]), _long_usage_features(source, g, metrics),
             _ewm_usage_features(source, g, metrics),
             _ticket_features(source, g),
             _survey_features(source, g), _touch_features(source, g), _stakeholder_features(source, g),
             _sentiment_features(source, g), _value_features(source, g)]
    expr = base
    for p in parts:
        if p is not None:
            expr = expr.left_join(p, ["account_id", "as_of"]).drop("account_id_right", "as_of_right")
    return SnapshotPlan(expr, tuple(metrics), data_start(source))


def build_snapshots(source: Source, as_of: Iterable[date] | date, *, labels: bool = True,
                    end: date | None = None, cache: bool = False) -> pd.DataFrame:
    """One row per (account active on the day before as_of, as_of). Features use rows dated < as_of only.

    ``cache``: keep the result on disk (CSFORECAST_HOME/cache/snapshots/, ``diskcache``) keyed by the data's
    content hash, the arguments and the feature code, and return the kept one when the key matches: the same
    frame, without recomputing it. Sources computed on Spark are never cached (their data is not local)."""
    if cache and source.engine == "duckdb":
        key = snapshot_key(source, as_of, labels, end)
        # pickled, not Parquet: the frame comes back exactly (Parquet has no datetime64[s])
        store = DiskCache(get_settings().home / "cache" / "snapshots", ".pkl")
        return store.get_or_compute(key, lambda: build_snapshots(source, as_of, labels=labels, end=end),
                                    load=pd.read_pickle, dump=pd.DataFrame.to_pickle)
    plan = snapshot_plan(source, as_of)
    df = plan.finish(plan.expr.to_pandas())
    if labels:
        df = add_labels(df, source.frame("contracts"), end or data_end(source))
    return df.sort_values(["as_of", "account_id"], ignore_index=True)


def snapshot_key(source: Source, as_of: Iterable[date] | date, labels: bool, end: date | None) -> str:
    """The disk-cache key of ``build_snapshots(source, as_of, labels=labels, end=end)``: the data's content
    hash (which includes how it is read: column map, date formats), the dates, the feature settings and the
    feature code."""
    dates = sorted({str(pd.Timestamp(d).date()) for d in ([as_of] if isinstance(as_of, date) else as_of)})
    return key_digest("snapshots", source.data_hash, dates, labels, None if end is None else str(end),
                      get_settings().features.model_dump(mode="json"),
                      code_digest("csforecast.features", "csforecast.data"))


def _finish(raw: pd.DataFrame, metrics: list[str], history_start: date | None = None) -> pd.DataFrame:
    # the columns are built in a dict and framed once at the end: inserting ~100 derived columns one at a time
    # into a DataFrame fragments it (pandas' PerformanceWarning, and a copy per insert)
    df: dict = {c: raw[c] for c in raw.columns}
    df["as_of"] = pd.to_datetime(df["as_of"])
    df["renewal_date"] = pd.to_datetime(df["renewal_date"])
    df["has_csm"] = df.pop("csm_id").notna().astype(float)
    for m in metrics:
        k = _slug(m)
        for suffix in ("7d", "30d", "prev30d", "90d"):
            df[f"{k}_{suffix}"] = df[f"{k}_{suffix}"].fillna(0.0)
        months = df.pop(f"_{k}_months").fillna(0)
        # a mean over months the account was not yet a customer would understate it: rescale by coverage
        df[f"{k}_6m"] = np.where(months >= 1, df[f"{k}_6m"] * 6 / months.clip(1, 6), np.nan)
        df[f"{k}_12m"] = np.where(months >= 1, df[f"{k}_12m"] * 12 / months.clip(1, 12), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            life = df[f"_{k}_life"].astype(float)
            df[f"{k}_lifetime"] = np.where(df["_life_days"] > 0, life / df["_life_days"], np.nan)
            for name in EWM_HALF_LIVES:
                den = df[f"_{name}_days"].astype(float)
                df[f"{k}_{name}"] = np.where(den > 0, df.pop(f"_{k}_{name}").astype(float) / den, np.nan)
            df.pop(f"_{k}_life")
        n, sx, sy, sxx, sxy = (df.pop(f"_{k}_{s}").astype(float) for s in ("n", "sx", "sy", "sxx", "sxy"))
        den = n * sxx - sx * sx
        with np.errstate(divide="ignore", invalid="ignore"):
            df[f"{k}_slope_90d"] = np.where((n >= 10) & (den > 0), (n * sxy - sx * sy) / den, np.nan)
            prev = df[f"{k}_prev30d"]
            df[f"{k}_trend_30d"] = np.where(prev > 0, df[f"{k}_30d"] / prev - 1, np.nan)
    if "active_users" in metrics:
        with np.errstate(divide="ignore", invalid="ignore"):
            seats = df["seats"].where(df["seats"] > 0)
            df["seat_utilisation"] = df["active_users_30d"] / seats
            df["seat_utilisation_7d"] = df["active_users_7d"] / seats
            df["seat_utilisation_90d"] = df["active_users_90d"] / seats
            df["seat_utilisation_12m"] = df["active_users_12m"] / seats
            for suffix in (*EWM_HALF_LIVES, "lifetime"):
                if f"active_users_{suffix}" in df:
                    df[f"seat_utilisation_{suffix}"] = df[f"active_users_{suffix}"] / seats
    if "key_features_used" in metrics:
        df["key_feature_breadth"] = df["key_features_used_30d"] * 7 / 10.0  # weekly count out of 10 features
    for c in ("_life_days", *(f"_{name}_days" for name in EWM_HALF_LIVES)):
        df.pop(c, None)
    if "_last_login_age" in df:
        df["days_since_login"] = df.pop("_last_login_age").fillna(DAYS_SINCE_CAP["login"]).astype(float)
    if "_promoters" in df:
        n = df["nps_count_365d"]
        with np.errstate(divide="ignore", invalid="ignore"):
            df["account_nps_365d"] = np.where(n > 0, 100 * (df.pop("_promoters") - df.pop("_detractors")) / n, np.nan)
    zero_if_none = [c for c in df if c.endswith(("_30d", "_90d", "_365d", "_prev90d", "_180d"))
                    and c.startswith(("tickets", "touches", "exec_", "qbrs", "champion_left", "csat_count",
                                      "nps_count", "ticket_csat_count"))] + ["open_tickets", "respondent_roles_365d"]
    for c in zero_if_none:
        if c in df:
            df[c] = df[c].fillna(0.0)
    if history_start is not None:
        # a trailing count over a window that reaches back before the data starts would read low (snapshots
        # early in the history see less of it): scale it to the full window, so it means the same at every date
        covered = (df["as_of"] - pd.Timestamp(history_start)).dt.days.to_numpy(dtype=float)
        for c, w in COUNT_WINDOWS.items():
            if c in df:
                df[c] = df[c] * (w / np.clip(covered, 1.0, w))
    if "seats" in df:
        # ticket volume grows with the number of users: per 100 seats it compares accounts of every size
        seats = df["seats"].where(df["seats"] > 0)
        for c in PER_SEAT:
            if c in df:
                df[f"{c}_per_100_seats"] = 100.0 * df[c] / seats
    return pd.DataFrame(df, index=raw.index)


def add_labels(df: pd.DataFrame, contracts: pd.DataFrame, end: date) -> pd.DataFrame:
    """label_churn: the contracts due at renewal_date were not renewed (None if due on/after the data end);
    label_arr_change: successor ARR / ARR due - 1 when renewed; label_churn_date and label_duration_days
    (days from as_of to the account's churn, or to the data end when censored) for survival."""
    end_ts = pd.Timestamp(end)
    c = contracts
    due = df[["account_id", "as_of", "renewal_date"]].merge(
        c[["account_id", "end_date", "arr", "renewed_by", "start_date"]], on="account_id")
    due = due[(due.end_date == due.renewal_date) & (due.start_date < due.as_of)]
    agg = due.groupby(["account_id", "as_of"]).agg(due_arr=("arr", "sum"),
                                                   succ=("renewed_by", "first"))  # first non-null successor
    succ_arr = c.set_index("contract_id")["arr"]
    agg["succ_arr"] = agg["succ"].map(succ_arr)
    out = df.merge(agg.reset_index(), on=["account_id", "as_of"], how="left")
    known = out["renewal_date"] < end_ts
    out["label_churn"] = np.where(known, out["succ"].isna().astype(float), np.nan)
    out["label_arr_change"] = np.where(known & out["succ"].notna(), out["succ_arr"] / out["due_arr"] - 1, np.nan)
    out = out.drop(columns=["due_arr", "succ", "succ_arr"])
    churn_dates = account_churn_dates(c, end_ts)
    out = out.merge(churn_dates.rename("label_churn_date"), left_on="account_id", right_index=True, how="left")
    # an account that churned before this snapshot and came back is not churned "after" it
    stale = out["label_churn_date"] < out["as_of"]
    out.loc[stale, "label_churn_date"] = pd.NaT
    out["label_event"] = out["label_churn_date"].notna().astype(float)
    out["label_duration_days"] = ((out["label_churn_date"].fillna(end_ts) - out["as_of"]).dt.days).astype(float)
    return out


def account_churn_dates(contracts: pd.DataFrame, end: pd.Timestamp) -> pd.Series:
    """Per account, the date it stopped being a customer: the end of a contract with no successor on or
    before `end` when no other contract covers that day. Accounts still customers at `end` are absent."""
    c = contracts[["account_id", "start_date", "end_date", "renewed_by"]]
    cand = c[c.renewed_by.isna() & (c.end_date <= end)][["account_id", "end_date"]].drop_duplicates()
    cover = cand.merge(c[["account_id", "start_date", "end_date"]].rename(
        columns={"end_date": "other_end"}), on="account_id")
    covered = cover[(cover.start_date <= cover.end_date) & (cover.other_end > cover.end_date)]
    gone = cand.merge(covered[["account_id", "end_date"]].drop_duplicates(), how="left", indicator=True)
    gone = gone[gone["_merge"] == "left_only"]
    return gone.groupby("account_id")["end_date"].max()


def monthly_grid(start: date, end: date) -> list[date]:
    """First days of the months from start (inclusive, rounded up) to end (inclusive)."""
    s = pd.Timestamp(start)
    first = s if s.day == 1 else (s + pd.offsets.MonthBegin(1))
    return [d.date() for d in pd.date_range(first, pd.Timestamp(end), freq="MS")]


FEATURE_EXCLUDE = {"account_id", "as_of", "contract_id", "renewal_date"}


def feature_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in FEATURE_EXCLUDE and not c.startswith("label_")]

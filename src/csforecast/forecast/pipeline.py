"""The expansion pipeline: open opportunities weighted by stage probabilities, default and learned.

Definitions in docs/metrics.md ("Expansion pipeline"); this module is the reference implementation.

* Weighted pipeline = sum of amount x P(won | stage) over open opportunities (stage not signed or lost).
  Default probabilities: the CS handbook's (emailed 0, discussion 0.2, contract_sent 0.5, verbal 0.8,
  signed 1, lost 0), configurable (`[pipeline] stage_probabilities`).
* Learned probabilities (needs `opportunity_history`): among the opportunities closed before a cut-off, the
  share of those that reached a stage that were won (Wilson interval, `n` = how many reached it). Stages
  are ordered; an opportunity reached every stage up to the furthest one its history shows (a won one
  reached them all). A stage no closed opportunity reached has no learned value: the default weights it.
* Windows: the open opportunities by the calendar quarter of `expected_close`, from the quarter holding the
  data end; overdue ones (expected before it) and ones without a date count in the first window.
* Back-test (time-ordered): for each of the last complete quarters, the opportunities open on its first day
  with `expected_close` in it, in the stage they were in that day (history), weighted by the defaults and by
  probabilities learned from opportunities closed before that day; `won_amount` is what of them was won
  by the data end. The calibration check compares, per stage, the mean learned probability with the won
  share over the same back-test rows (and the Brier score of each weighting).
"""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from csforecast.data.contract import OPPORTUNITY_STAGES
from csforecast.forecast.book import group_labels, to_day
from csforecast.jsonsafe import finite_float

__all__ = ["OPEN_STAGES", "RENEWAL_OVERLAP_DAYS", "check_stage_probabilities", "learned_stage_probabilities",
           "stages_on", "pipeline_report", "pipeline_addons", "off_pipeline_factor"]

OPEN_STAGES = OPPORTUNITY_STAGES[:4]        # emailed, discussion, contract_sent, verbal
RENEWAL_OVERLAP_DAYS = 30   # an opportunity expected this close to its account's renewal is the renewal's expansion
_RANK = {s: i for i, s in enumerate(OPPORTUNITY_STAGES[:5])}   # lost has no rank: it is where a path ends


def check_stage_probabilities(probs: dict) -> dict[str, float]:
    """The configured stage probabilities, every stage present and in [0, 1] (ValueError naming the stage)."""
    out = {}
    for s in OPPORTUNITY_STAGES:
        if s not in probs:
            raise ValueError(f"pipeline.stage_probabilities has no probability for stage {s!r}")
        v = float(probs[s])
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"pipeline.stage_probabilities.{s} must be between 0 and 1, not {probs[s]!r}")
        out[s] = v
    unknown = set(probs) - set(OPPORTUNITY_STAGES)
    if unknown:
        raise ValueError(f"pipeline.stage_probabilities names unknown stage(s) {', '.join(sorted(unknown))} "
                         f"(stages: {', '.join(OPPORTUNITY_STAGES)})")
    return out


def _prepare(opps: pd.DataFrame) -> pd.DataFrame:
    o = opps.copy()
    o["opportunity_id"] = o["opportunity_id"].astype(str)
    o["account_id"] = o["account_id"].astype(str)
    for c in ("created_at", "expected_close", "closed_at"):
        o[c] = pd.to_datetime(o[c])
    o["stage"] = o["stage"].astype(str).str.lower()
    o["amount"] = pd.to_numeric(o["amount"], errors="coerce").fillna(0.0)
    won = o["won"] if "won" in o.columns else pd.Series(None, index=o.index)
    o["won"] = won.astype(object).where(won.notna(), None)
    o.loc[o["stage"] == "signed", "won"] = True
    o.loc[o["stage"] == "lost", "won"] = False
    return o


def _furthest(history: pd.DataFrame | None, cutoff: pd.Timestamp | None) -> pd.Series:
    """Per opportunity, the rank of the furthest ordered stage its history shows before ``cutoff``."""
    if history is None or history.empty:
        return pd.Series(dtype=float)
    h = history.assign(opportunity_id=history["opportunity_id"].astype(str),
                       stage=history["stage"].astype(str).str.lower(), entered_at=pd.to_datetime(history["entered_at"]))
    if cutoff is not None:
        h = h[h["entered_at"] < cutoff]
    h = h.assign(rank=h["stage"].map(_RANK)).dropna(subset=["rank"])
    return h.groupby("opportunity_id")["rank"].max()


def learned_stage_probabilities(opps: pd.DataFrame, history: pd.DataFrame | None, cutoff=None,
                                level: float = 0.90) -> dict[str, dict]:
    """stage -> {learned, ci_low, ci_high, n} from the opportunities closed before ``cutoff`` (all closed ones
    when None). Without history the open stages have learned None (n 0); signed is 1 and lost 0 by definition."""
    o = _prepare(opps)
    cut = to_day(cutoff) if cutoff is not None else None
    closed = o[o["won"].notna() & o["closed_at"].notna()]
    if cut is not None:
        closed = closed[closed["closed_at"] < cut]
    far = _furthest(history, cut)
    won = closed["won"].astype(bool).to_numpy()
    rank = closed["opportunity_id"].map(far).to_numpy(dtype=float)
    # a won one reached every stage; every opportunity starts emailed (a lost one its history does not show)
    rank = np.where(won, _RANK["signed"], np.nan_to_num(rank, nan=_RANK["emailed"]))
    no_history = history is None or history.empty
    out = {}
    for s in OPEN_STAGES:
        reached = rank >= _RANK[s]
        if no_history:     # without history a lost opportunity's furthest stage is unknown: nothing to learn
            reached = np.zeros(len(rank), dtype=bool)
        n, k = int(reached.sum()), int((reached & won).sum())
        if n == 0:
            out[s] = {"learned": None, "ci_low": None, "ci_high": None, "n": 0}
            continue
        lo, hi = proportion_confint(k, n, alpha=1 - level, method="wilson")
        out[s] = {"learned": finite_float(k / n, 6), "ci_low": finite_float(lo, 6), "ci_high": finite_float(hi, 6),
                  "n": n}
    out["signed"] = {"learned": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": int(won.sum())}
    out["lost"] = {"learned": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": int((~won).sum())}
    return out


def stages_on(opps: pd.DataFrame, history: pd.DataFrame | None, day) -> pd.DataFrame:
    """The opportunities open on ``day`` (created before it, not closed before it) with the stage they were in
    that day (the last stage their history entered before it; ``emailed`` when the history shows none)."""
    o = _prepare(opps)
    d = to_day(day)
    open_ = o[(o["created_at"] < d) & (o["closed_at"].isna() | (o["closed_at"] >= d))].copy()
    if history is None or history.empty:
        open_["stage_on"] = None
        return open_
    h = history.assign(opportunity_id=history["opportunity_id"].astype(str),
                       stage=history["stage"].astype(str).str.lower(), entered_at=pd.to_datetime(history["entered_at"]))
    h = h[(h["entered_at"] < d) & h["stage"].isin(OPEN_STAGES)].sort_values("entered_at", kind="stable")
    last = h.drop_duplicates("opportunity_id", keep="last").set_index("opportunity_id")["stage"]
    open_["stage_on"] = open_["opportunity_id"].map(last).fillna("emailed")
    return open_


def _weights(stages: pd.Series, default: dict, learned: dict) -> tuple[np.ndarray, np.ndarray]:
    p_def = stages.map(default).astype(float).to_numpy()
    p_learn = stages.map(lambda s: learned[s]["learned"] if learned.get(s, {}).get("learned") is not None
                         else default[s]).astype(float).to_numpy()
    return p_def, p_learn


def _windows(open_now: pd.DataFrame, data_end: pd.Timestamp, n: int, default: dict, learned: dict) -> list[dict]:
    first = data_end.to_period("Q")
    starts = [first + i for i in range(n)]
    exp = open_now["expected_close"]
    q = exp.dt.to_period("Q")
    p_def, p_learn = _weights(open_now["stage"], default, learned)
    amount = open_now["amount"].to_numpy(dtype=float)
    rows = []
    for i, per in enumerate(starts):
        m = (q == per).to_numpy()
        if i == 0:
            m |= (exp.isna() | (q < per)).to_numpy()
        rows.append({"start": per.start_time.date().isoformat(),
                     "end": (per.end_time.normalize() + pd.Timedelta(days=1)).date().isoformat(),
                     "opportunities": int(m.sum()), "open_amount": finite_float(amount[m].sum(), 2),
                     "weighted_default": finite_float((amount * p_def)[m].sum(), 2),
                     "weighted_learned": finite_float((amount * p_learn)[m].sum(), 2)})
    return rows


def _backtest(o_raw: pd.DataFrame, history: pd.DataFrame | None, data_end: pd.Timestamp, quarters: int,
              default: dict, level: float) -> tuple[list[dict], dict]:
    if history is None or history.empty:
        return [], {"available": False, "reason": "no opportunity_history table: the stage of an opportunity on a "
                                                  "past date is unknown"}
    last_complete = (data_end - pd.Timedelta(days=1)).to_period("Q")
    if (last_complete.end_time.normalize() + pd.Timedelta(days=1)) > data_end:
        last_complete -= 1
    rows, preds = [], []
    for per in [last_complete - i for i in range(quarters - 1, -1, -1)]:
        start = per.start_time.normalize()
        end = per.end_time.normalize() + pd.Timedelta(days=1)
        on = stages_on(o_raw, history, start)
        on = on[(on["expected_close"] >= start) & (on["expected_close"] < end)]
        learned = learned_stage_probabilities(o_raw, history, start, level)
        p_def, p_learn = _weights(on["stage_on"], default, learned)
        amount = on["amount"].to_numpy(dtype=float)
        won = on["won"].map(lambda v: v is True).to_numpy(dtype=bool)
        unresolved = on["won"].isna().to_numpy()
        rows.append({"quarter": str(per), "start": start.date().isoformat(), "end": end.date().isoformat(),
                     "opportunities": int(len(on)), "open_amount": finite_float(amount.sum(), 2),
                     "weighted_default": finite_float((amount * p_def).sum(), 2),
                     "weighted_learned": finite_float((amount * p_learn).sum(), 2),
                     "won_amount": finite_float(amount[won].sum(), 2),
                     "unresolved_amount": finite_float(amount[unresolved].sum(), 2)})
        preds.append(pd.DataFrame({"stage": on["stage_on"].to_numpy(), "p_default": p_def, "p_learned": p_learn,
                                   "won": won.astype(float), "resolved": ~unresolved}))
    return rows, _calibration(pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(), rows)


def _calibration(p: pd.DataFrame, rows: list[dict]) -> dict:
    def wape(key):
        a = np.array([r["won_amount"] for r in rows], dtype=float)
        f = np.array([r[key] for r in rows], dtype=float)
        return finite_float(np.abs(f - a).sum() / a.sum(), 6) if a.sum() > 0 else None

    out = {"available": True, "wape_default": wape("weighted_default"), "wape_learned": wape("weighted_learned")}
    if p.empty:
        return {**out, "brier_default": None, "brier_learned": None, "by_stage": []}
    r = p[p["resolved"]]
    out["brier_default"] = finite_float(((r["p_default"] - r["won"]) ** 2).mean(), 6) if len(r) else None
    out["brier_learned"] = finite_float(((r["p_learned"] - r["won"]) ** 2).mean(), 6) if len(r) else None
    out["by_stage"] = [{"stage": s, "n": int(len(g)), "mean_default": finite_float(g["p_default"].mean(), 6),
                        "mean_learned": finite_float(g["p_learned"].mean(), 6),
                        "won_share": finite_float(g["won"].mean(), 6)}
                       for s, g in r.groupby("stage") if s in OPEN_STAGES]
    out["by_stage"].sort(key=lambda d: _RANK[d["stage"]])
    return out


def pipeline_report(opportunities: pd.DataFrame | None, history: pd.DataFrame | None, data_end: date, *,
                    stage_probabilities: dict, windows: int = 4, backtest_quarters: int = 6, level: float = 0.90,
                    accounts: pd.DataFrame | None = None, contracts: pd.DataFrame | None = None,
                    group_by: str | None = None) -> dict:
    """The expansion pipeline as of ``data_end`` (docs/metrics.md "Expansion pipeline"): stage probabilities
    (default and learned with intervals), the open pipeline per quarter window (and per group), and the
    back-test of both weightings with a calibration check. ``opportunities`` None or empty: an empty report
    saying so. ValueError for bad stage probabilities or an unknown group."""
    default = check_stage_probabilities(stage_probabilities)
    end = to_day(data_end)
    note = []
    if opportunities is None or opportunities.empty:
        sp = {s: {"default": default[s], "learned": None, "ci_low": None, "ci_high": None, "n": 0}
              for s in OPPORTUNITY_STAGES}
        return {"data_end": end.date().isoformat(), "available": False, "stage_probabilities": sp, "windows": [],
                "backtest": [], "calibration": {"available": False}, "open": {"opportunities": 0, "amount": 0.0},
                "notes": ["no opportunities table (or it is empty): there is no pipeline to weight"]}
    o = _prepare(opportunities)
    o = o[o["created_at"] < end]
    if history is None or history.empty:
        note.append("no opportunity_history table: stage probabilities cannot be learned and the back-test "
                    "needs each opportunity's stage on a past date; the default probabilities weight the pipeline")
    learned = learned_stage_probabilities(o, history, end, level)
    sp = {s: {"default": default[s], **learned[s]} for s in OPPORTUNITY_STAGES}
    open_now = o[o["won"].isna() & o["stage"].isin(OPEN_STAGES)]
    backtest, calibration = _backtest(o, history, end, backtest_quarters, default, level)
    out = {"data_end": end.date().isoformat(), "available": True, "stage_probabilities": sp,
           "open": {"opportunities": int(len(open_now)), "amount": finite_float(open_now["amount"].sum(), 2)},
           "windows": _windows(open_now, end, windows, default, learned), "backtest": backtest,
           "calibration": calibration, "group_by": group_by, "notes": note}
    if group_by is not None:
        labels = group_labels(accounts, contracts if contracts is not None else pd.DataFrame(
            columns=["account_id", "start_date"]), open_now["account_id"], group_by)
        out["groups"] = [{"group": str(g), "windows": _windows(open_now[labels == g], end, windows, default, learned)}
                         for g in sorted(set(labels))]
    return out


def pipeline_addons(opportunities: pd.DataFrame | None, history: pd.DataFrame | None, start, end, as_of, *,
                    stage_probabilities: dict, renewals: pd.DataFrame | None = None, level: float = 0.90
                    ) -> tuple[pd.DataFrame, dict]:
    """Mid-term add-on ARR from the open pipeline for the window [max(start, as_of), end), per account
    (docs/forecast.md "Mid-term expansion"; the NRR forecast's expansion part where a pipeline exists).

    The opportunities open on ``as_of`` (created before it, not closed before it) in the stage they were in that
    day (``stages_on``; without ``history`` their current stage while still open, else ``emailed``) whose
    ``expected_close`` falls in the window (overdue or undated ones in a window that starts at ``as_of``), each
    weighted by P(won | stage) learned from the opportunities closed before ``as_of`` (the configured default
    where a stage has no learned value). An opportunity of an account with a pending renewal in the window
    (``renewals``: ``account_id, renewal_date``) expected to close within ``RENEWAL_OVERLAP_DAYS`` of that renewal
    is left to the renewal's expansion (the expansion model), so it is not counted twice.

    Returns (frame ``account_id, mean, var, opportunities`` - mean = sum of amount x p, var = sum of
    amount^2 p (1 - p), independent Bernoulli wins -, info ``{available, opportunities, open_amount,
    weighted_arr, excluded_at_renewal, excluded_at_renewal_amount, probabilities}``). No opportunities: an
    empty frame with ``available`` False. ValueError for bad stage probabilities."""
    default = check_stage_probabilities(stage_probabilities)
    empty = pd.DataFrame({"account_id": pd.Series(dtype=object), "mean": pd.Series(dtype=float),
                          "var": pd.Series(dtype=float), "opportunities": pd.Series(dtype=int)})
    a_day, hi = to_day(as_of), to_day(end)
    lo = max(to_day(start), a_day)
    if opportunities is None or opportunities.empty or hi <= lo:
        return empty, {"available": False, "opportunities": 0, "open_amount": 0.0, "weighted_arr": 0.0,
                       "excluded_at_renewal": 0, "excluded_at_renewal_amount": 0.0, "probabilities": None}
    o = _prepare(opportunities)
    o = o[o["created_at"] < a_day]
    has_history = history is not None and not history.empty
    on = stages_on(o, history, a_day)
    if not has_history:        # no stage on a past day: the current stage while open, else the first stage
        on["stage_on"] = np.where(on["won"].isna() & on["stage"].isin(OPEN_STAGES), on["stage"], "emailed")
    exp = on["expected_close"]
    inside = (exp >= lo) & (exp < hi)
    if lo == a_day:
        inside |= exp.isna() | (exp < a_day)
    on = on[inside.to_numpy()].copy()
    learned = learned_stage_probabilities(o, history, a_day, level)
    _, p = _weights(on["stage_on"], default, learned)
    on["p"] = p
    amount = on["amount"].to_numpy(dtype=float)
    at_renewal = np.zeros(len(on), dtype=bool)
    if renewals is not None and len(renewals) and len(on):
        r = pd.DataFrame({"account_id": renewals["account_id"].astype(str).to_numpy(),
                          "renewal_date": pd.to_datetime(renewals["renewal_date"]).to_numpy()})
        m = on[["opportunity_id", "account_id", "expected_close"]].reset_index().merge(r, on="account_id")
        close = (m["expected_close"].fillna(a_day) - m["renewal_date"]).abs() <= pd.Timedelta(days=RENEWAL_OVERLAP_DAYS)
        at_renewal = on.index.isin(m.loc[close.to_numpy(), "index"])
    keep = on[~at_renewal]
    k_amount, k_p = keep["amount"].to_numpy(dtype=float), keep["p"].to_numpy(dtype=float)
    per = pd.DataFrame({"account_id": keep["account_id"].to_numpy(), "mean": k_amount * k_p,
                        "var": k_amount * k_amount * k_p * (1 - k_p), "opportunities": 1})
    frame = per.groupby("account_id", as_index=False).sum() if len(per) else empty
    info = {"available": True, "opportunities": int(len(keep)), "open_amount": finite_float(k_amount.sum(), 2),
            "weighted_arr": finite_float(float((k_amount * k_p).sum()), 2),
            "excluded_at_renewal": int(at_renewal.sum()),
            "excluded_at_renewal_amount": finite_float(float(amount[at_renewal].sum()), 2),
            "probabilities": "learned" if has_history else "default"}
    return frame, info


def off_pipeline_factor(contracts: pd.DataFrame, accounts: pd.DataFrame | None, opportunities: pd.DataFrame | None,
                        history: pd.DataFrame | None, start, end, as_of, *, stage_probabilities: dict,
                        lookback_days: int = 365, level: float = 0.90) -> dict:
    """How much of the history method's add-on forecast the accounts without pipeline actually sign, learned
    on past windows (docs/forecast.md "Mid-term expansion"). Where add-ons come through the pipeline, an
    account with no open opportunity at the window start signs fewer add-ons than the portfolio's history rate
    says (that rate counts the add-ons the pipeline forecasts too), so the history forecast of such accounts is
    scaled by ``factor``.

    The past windows have the forecast window's length and end at as_of, as_of - length, ... back to
    ``lookback_days``; in each, as of its first day (only rows known then), the accounts without a
    ``pipeline_addons`` row (its pending renewals passed, as the forecast does) take ``addons.addon_forecast``; ``factor`` = their ``addons.addon_actual`` summed
    over the windows ÷ that forecast summed (1.0 with no opportunities, no past window or no forecast).
    Returns ``{factor, windows, forecast, actual}``. ValueError for bad stage probabilities."""
    from csforecast.forecast.addons import addon_actual, addon_forecast
    from csforecast.forecast.book import renewal_book

    a_day, hi = to_day(as_of), to_day(end)
    length = (hi - max(to_day(start), a_day)).days
    out = {"factor": 1.0, "windows": 0, "forecast": 0.0, "actual": 0.0}
    if opportunities is None or opportunities.empty or length <= 0:
        return out
    fc = act = 0.0
    k = 1
    while k * length <= lookback_days:
        s = a_day - pd.Timedelta(days=k * length)
        e = s + pd.Timedelta(days=length)
        k += 1
        hist, _ = addon_forecast(contracts, accounts, s, e, s)
        if hist.empty:
            continue
        book = renewal_book(contracts, accounts, s, e, s)     # as the forecast: deals at a renewal left to it
        pipe, _ = pipeline_addons(opportunities, history, s, e, s, stage_probabilities=stage_probabilities,
                                  renewals=book.loc[book["status"] == "pending", ["account_id", "renewal_date"]],
                                  level=level)
        rest = ~hist["account_id"].astype(str).isin(set(pipe["account_id"].astype(str)))
        actual = addon_actual(contracts, s, e, s)
        fc += float(hist.loc[rest, "mean"].sum())
        act += float(actual.reindex(hist.loc[rest, "account_id"].astype(str)).fillna(0.0).sum())
        out["windows"] += 1
    out.update(forecast=finite_float(fc, 2), actual=finite_float(act, 2))
    if fc > 0:
        out["factor"] = finite_float(act / fc, 4)
    return out

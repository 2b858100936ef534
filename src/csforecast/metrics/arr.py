"""ARR metrics engine: account ARR on a date, ARR movements (bridge), retention rates, renewal rates.

Every definition is in docs/metrics.md; this module is the reference implementation. Summary:

* A contract covers the days ``start_date <= d < effective_end`` and contributes its ``arr`` on those days.
  ``effective_end`` is ``end_date`` unless the contract has a successor (``renewed_by``), in which case it
  is the successor's ``start_date``: a late renewal keeps the predecessor's ARR until the successor
  starts (no churn-then-new), an early renewal stops the predecessor when the successor starts (no
  double counting). A ``renewed_by`` that names no contract in the table is "renewed, successor not
  visible": the predecessor keeps counting, flat, indefinitely.
* Account ARR at a boundary date is the sum of the ARR of the contracts covering that day.
* Movements are NET per account per period, between ARR on the period's first day and ARR on the first
  day of the next period. starting + new + expansion - contraction - churned = ending holds exactly:
  money is summed in integer micro-units (1e-6 of the currency), converted to float only on output.
* A contract is *due* in the period that contains its last covered day (``end_date - 1 day``), i.e. its
  renewal date ``end_date`` lies in ``(period_start, period_end]`` -- the same period whose movements
  show the renewal's ARR change when the successor starts on time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from csforecast.data.contract import UNASSIGNED, started
from csforecast.jsonsafe import to_records

__all__ = [
    "MOVEMENT_COLUMNS",
    "account_arr_at",
    "account_arr_panel",
    "annualized_churn_rate",
    "arr_movements",
    "periodic_churn_rate",
    "renewal_rate",
    "to_records",
]

UNITS_PER_CURRENCY = 1_000_000      # money is summed as int64 micro-units: exact, order-independent sums
_FAR_FUTURE = np.int64(10 ** 9)      # day number used for "never ends" (year ~2.7 million)

_FREQ = {"quarter": "Q", "q": "Q", "month": "M", "m": "M", "year": "Y", "y": "Y", "a": "Y", "annual": "Y"}
PERIODS_PER_YEAR = {"M": 12, "Q": 4, "Y": 1}

MOVEMENT_COLUMNS = [
    "period", "group", "period_start", "period_end",
    "starting_arr", "new_arr", "expansion_arr", "contraction_arr", "churned_arr", "ending_arr",
    "grr", "nrr", "logo_retention",
    "starting_logos", "new_logos", "churned_logos", "ending_logos", "logo_churn_rate",
    "renewal_rate", "expected_renewal_arr", "renewed_arr",
]
_MONEY = ["starting_arr", "new_arr", "expansion_arr", "contraction_arr", "churned_arr", "ending_arr",
          "expected_renewal_arr", "renewed_arr"]


# --------------------------------------------------------------------------------------------------------
# preparation
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Contracts:
    """The contracts table reduced to numpy arrays (one entry per usable contract)."""
    account_ids: np.ndarray   # unique account ids (str, sorted), the account universe
    acc: np.ndarray           # account code of each contract (index into account_ids)
    start: np.ndarray         # start day (int64 days since epoch)
    end: np.ndarray           # end_date day; _FAR_FUTURE when null (open-ended, never due)
    eff_end: np.ndarray       # effective end day after the late/early renewal rules
    units: np.ndarray         # arr in int64 micro-units
    renewed: np.ndarray       # bool: renewed_by names a successor (found or not)


def _days(values, what: str, allow_null: bool = False) -> tuple[np.ndarray, np.ndarray]:
    s = pd.to_datetime(pd.Series(values).reset_index(drop=True))
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_localize(None)
    null = s.isna().to_numpy()
    if null.any() and not allow_null:
        raise ValueError(f"{what} has {int(null.sum())} null value(s)")
    days = s.to_numpy().astype("datetime64[D]").astype(np.int64)
    days[null] = _FAR_FUTURE
    return days, null


def _day(value, what: str) -> np.int64:
    if value is None:
        raise ValueError(f"{what} is required")
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"{what} is not a date: {value!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return np.int64(np.datetime64(ts.normalize().to_datetime64(), "D").astype(np.int64))


def _to_units(arr) -> np.ndarray:
    a = pd.to_numeric(pd.Series(arr), errors="coerce").to_numpy(dtype=float)
    if np.isnan(a).any():
        raise ValueError(f"contracts.arr has {int(np.isnan(a).sum())} null / non-numeric value(s)")
    if (a < 0).any():
        raise ValueError("contracts.arr must be >= 0")
    if not np.isfinite(a).all() or (a * UNITS_PER_CURRENCY > 2 ** 62).any():
        raise ValueError("contracts.arr has infinite or absurdly large values")
    return np.rint(a * UNITS_PER_CURRENCY).astype(np.int64)


def _ids(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(id strings, null mask); float ids read from CSV (123.0) become "123"."""
    null = col.isna().to_numpy()
    if pd.api.types.is_float_dtype(col.dtype):
        v = col.to_numpy(dtype=float)
        if np.all(np.isnan(v) | (v == np.round(v))):
            col = col.astype("Int64")
    return np.where(null, "", col.astype(str).to_numpy()).astype(object), null


def _prepare(contracts: pd.DataFrame) -> _Contracts:
    need = {"contract_id", "account_id", "start_date", "end_date", "arr"}
    missing = need - set(contracts.columns)
    if missing:
        raise ValueError(f"contracts is missing column(s): {sorted(missing)}")
    cid, cid_null = _ids(contracts["contract_id"])
    if cid_null.any():
        raise ValueError("contracts.contract_id has null values")
    if len(pd.unique(cid)) != len(cid):
        raise ValueError("contracts.contract_id is not unique")
    acc_str, acc_null = _ids(contracts["account_id"])
    if acc_null.any():
        raise ValueError("contracts.account_id has null values")
    start, _ = _days(contracts["start_date"], "contracts.start_date")
    end, _ = _days(contracts["end_date"], "contracts.end_date", allow_null=True)
    if (end < start).any():
        bad = cid[end < start][:5]
        raise ValueError(f"contracts with end_date before start_date: {list(bad)}")
    units = _to_units(contracts["arr"])

    if "renewed_by" in contracts.columns:
        rb_str, rb_null = _ids(contracts["renewed_by"])
        has_ref = ~rb_null & (rb_str != "") & (rb_str != cid)  # empty string / self reference = no successor
    else:
        rb_str, has_ref = np.full(len(cid), ""), np.zeros(len(cid), dtype=bool)
    idx = pd.Index(cid).get_indexer(rb_str)
    found = has_ref & (idx >= 0)
    eff_end = end.copy()
    eff_end[found] = start[idx[found]]                        # late: extend; early: truncate
    eff_end[has_ref & ~found] = _FAR_FUTURE                   # successor not in the table: renewed flat
    eff_end = np.maximum(eff_end, start)

    keep = end > start                                        # zero-length contracts cover no day
    account_ids, acc = np.unique(acc_str, return_inverse=True)
    return _Contracts(account_ids, acc[keep].astype(np.int64), start[keep], end[keep], eff_end[keep],
                      units[keep], has_ref[keep])


def _arr_units(c: _Contracts, boundaries: np.ndarray) -> np.ndarray:
    """int64 matrix (n_accounts, len(boundaries)): account ARR in micro-units on each boundary day.

    A contract counts on boundary k iff start <= B[k] < eff_end; a difference array + cumsum keeps it O(n).
    """
    b = np.asarray(boundaries, dtype=np.int64)
    k0 = np.searchsorted(b, c.start, side="left")
    k1 = np.searchsorted(b, c.eff_end, side="left")
    m = k1 > k0
    n_acc, k = len(c.account_ids), len(b)
    diff = np.zeros(n_acc * (k + 1), dtype=np.int64)
    np.add.at(diff, c.acc[m] * (k + 1) + k0[m], c.units[m])
    np.add.at(diff, c.acc[m] * (k + 1) + k1[m], -c.units[m])
    return np.cumsum(diff.reshape(n_acc, k + 1), axis=1)[:, :k]


def _money(units) -> Any:
    return np.asarray(units, dtype=np.float64) / UNITS_PER_CURRENCY


def _dates(days) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[ns]"))


# --------------------------------------------------------------------------------------------------------
# ARR on dates
# --------------------------------------------------------------------------------------------------------
def account_arr_at(contracts: pd.DataFrame, when, include_zero: bool = False) -> pd.Series:
    """ARR of each account on day `when` (after the late/early renewal rules).

    Returns a float Series indexed by account_id (sorted), named "arr". Accounts with ARR 0 on that day
    are omitted unless `include_zero=True` (then every account that has a contract is listed).
    Uses the whole table (hindsight): cut the table first for a point-in-time view.
    """
    c = _prepare(contracts)
    u = _arr_units(c, np.array([_day(when, "when")]))[:, 0]
    s = pd.Series(_money(u), index=pd.Index(c.account_ids, name="account_id"), name="arr")
    return s if include_zero else s[u > 0]


def account_arr_panel(contracts: pd.DataFrame, dates) -> pd.DataFrame:
    """ARR of every account (rows, account_id) on each of `dates` (columns, as Timestamps).

    Same rules as `account_arr_at`; accounts with 0 ARR are included (0.0).
    """
    c = _prepare(contracts)
    days = np.array([_day(d, "dates") for d in dates], dtype=np.int64)
    order = np.argsort(days, kind="stable")
    u = np.empty((len(c.account_ids), len(days)), dtype=np.int64)
    u[:, order] = _arr_units(c, days[order])
    return pd.DataFrame(_money(u), index=pd.Index(c.account_ids, name="account_id"), columns=_dates(days))


# --------------------------------------------------------------------------------------------------------
# renewal rate
# --------------------------------------------------------------------------------------------------------
def _default_data_end(c: _Contracts) -> np.int64:
    """The day after the latest contract start that is not after today (as features.snapshot.data_end: a
    renewal booked ahead is not data yet)."""
    begun = c.start[started(c.start, _day(date.today(), "today"))]
    return np.int64(begun.max() + 1) if len(begun) else np.int64(0)


def renewal_rate(contracts: pd.DataFrame, start, end, *, data_end=None) -> dict:
    """Renewals of the contracts due in [start, end).

    A contract is due in the window when its last covered day (end_date - 1 day) lies in [start, end),
    i.e. its renewal date end_date lies in (start, end]. Due contracts with a successor (renewed_by set)
    are renewed -- late and early renewals included -- the others are churned once their renewal date
    has passed (end_date <= data_end) and *pending* otherwise. `data_end` (exclusive: the first day not
    covered by the data) defaults to the day after the latest contract start.

    renewed_arr is the ARR *up for renewal* of the renewed contracts (the predecessors' ARR, not the
    successors'), so renewed_arr + churned_arr + pending_arr = expected_renewal_arr and
    renewal_rate = renewed_arr / (renewed_arr + churned_arr) <= 1 (NaN when nothing is decided).
    Add-ons co-termed with the main contract are due with it and part of the expected ARR.
    """
    c = _prepare(contracts)
    s, e = _day(start, "start"), _day(end, "end")
    de = _default_data_end(c) if data_end is None else _day(data_end, "data_end")
    due = (c.end > s) & (c.end <= e) & (c.end < _FAR_FUTURE)
    renewed = due & c.renewed
    churned = due & ~c.renewed & (c.end <= de)
    pending = due & ~c.renewed & (c.end > de)
    exp_u, ren_u, ch_u = int(c.units[due].sum()), int(c.units[renewed].sum()), int(c.units[churned].sum())
    decided = ren_u + ch_u
    return {
        "expected_renewal_arr": exp_u / UNITS_PER_CURRENCY,
        "renewed_arr": ren_u / UNITS_PER_CURRENCY,
        "churned_arr": ch_u / UNITS_PER_CURRENCY,
        "pending_arr": int(c.units[pending].sum()) / UNITS_PER_CURRENCY,
        "count_due": int(due.sum()),
        "count_renewed": int(renewed.sum()),
        "count_churned": int(churned.sum()),
        "count_pending": int(pending.sum()),
        "renewal_rate": ren_u / decided if decided > 0 else float("nan"),
    }


# --------------------------------------------------------------------------------------------------------
# ARR movements
# --------------------------------------------------------------------------------------------------------
def _freq(period: str) -> str:
    try:
        return _FREQ[str(period).lower()]
    except KeyError:
        raise ValueError(f"period must be 'month', 'quarter' or 'year', not {period!r}") from None


def _group_codes(c: _Contracts, accounts: pd.DataFrame | None, group_by: str, cohort_freq: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(group label per group code, group code per account)."""
    if group_by == "cohort":
        first = np.full(len(c.account_ids), _FAR_FUTURE, dtype=np.int64)
        np.minimum.at(first, c.acc, c.start)
        labels = _dates(first).to_period(cohort_freq).astype(str).to_numpy()
    else:
        if accounts is None:
            raise ValueError(f"group_by={group_by!r} needs the accounts table")
        if group_by not in accounts.columns:
            raise ValueError(f"group_by={group_by!r} is not a column of accounts (or 'cohort')")
        ids = pd.Series(_ids(accounts["account_id"])[0])
        if ids.duplicated().any():
            raise ValueError("accounts.account_id is not unique")
        attr = pd.Series(accounts[group_by].to_numpy(dtype=object), index=ids.to_numpy())
        vals = attr.reindex(c.account_ids)
        null = vals.isna().to_numpy()
        labels = np.where(null, UNASSIGNED, vals.astype(str).to_numpy()).astype(object)
    uniq, codes = np.unique(labels.astype(str), return_inverse=True)
    return uniq, codes.astype(np.int64)


def _empty_movements(grouped: bool) -> pd.DataFrame:
    cols = [col for col in MOVEMENT_COLUMNS if grouped or col != "group"]
    return pd.DataFrame({col: pd.Series(dtype="datetime64[ns]" if col in ("period_start", "period_end")
                                        else object if col in ("period", "group")
                                        else "int64" if col.endswith("_logos") else float) for col in cols})


def arr_movements(contracts: pd.DataFrame, accounts: pd.DataFrame | None = None, period: str = "quarter",
                  group_by: str | None = None, start=None, end=None, *, data_end=None,
                  cohort_period: str | None = None) -> pd.DataFrame:
    """ARR bridge and retention per period (and per group): see docs/metrics.md for every column.

    period      "month" | "quarter" | "year"; labels "2024-03" | "2024Q1" | "2024".
    group_by    None, a column of `accounts` (segment, region, csm_id, ...; null -> "unassigned", accounts
                absent from the table -> "unassigned"), or "cohort" (period of the account's first
                contract start, at `cohort_period` granularity, default = `period`).
    start       periods start with the one containing the earliest contract start; with `start`, the
                first period is the first one starting on or after `start`.
    end         data end, exclusive (first day not covered by the data); `data_end` is an alias. Only
                complete periods are emitted: period_end (exclusive) <= end. Default: the day after
                the latest contract start.
    Grouped output omits (period, group) rows with no ARR at either end and no renewal due.
    """
    freq = _freq(period)
    cohort_freq = _freq(cohort_period) if cohort_period else freq
    if end is not None and data_end is not None and _day(end, "end") != _day(data_end, "data_end"):
        raise ValueError("give end or data_end, not two different dates")
    grouped = group_by is not None
    c = _prepare(contracts)
    if len(c.start) == 0:
        return _empty_movements(grouped)
    cutoff = end if end is not None else data_end
    cutoff_day = _day(cutoff, "end") if cutoff is not None else _default_data_end(c)

    first_day = c.start.min() if start is None else _day(start, "start")
    p0 = pd.Period(_dates([first_day])[0], freq=freq)
    if start is not None and p0.start_time.normalize() != _dates([first_day])[0]:
        p0 = p0 + 1
    p_last = pd.Period(_dates([cutoff_day])[0], freq=freq) - 1
    if p_last < p0:
        return _empty_movements(grouped)
    periods = pd.period_range(p0, p_last, freq=freq)
    bounds = pd.DatetimeIndex([p.start_time for p in periods] + [(p_last + 1).start_time])
    b = bounds.to_numpy().astype("datetime64[D]").astype(np.int64)
    n_p = len(periods)

    arr = _arr_units(c, b)                                    # (n_acc, n_p + 1)
    s, e = arr[:, :-1], arr[:, 1:]
    s_pos, e_pos = s > 0, e > 0
    both = s_pos & e_pos
    d = e - s
    per_account = {
        "starting_arr": s, "ending_arr": e,
        "new_arr": np.where(~s_pos & e_pos, e, 0),
        "churned_arr": np.where(s_pos & ~e_pos, s, 0),
        "expansion_arr": np.where(both & (d > 0), d, 0),
        "contraction_arr": np.where(both & (d < 0), -d, 0),
        "starting_logos": s_pos.astype(np.int64), "ending_logos": e_pos.astype(np.int64),
        "new_logos": (~s_pos & e_pos).astype(np.int64),
        "churned_logos": (s_pos & ~e_pos).astype(np.int64),
    }

    if grouped:
        labels, gcode = _group_codes(c, accounts, group_by, cohort_freq)
    else:
        labels, gcode = np.array(["all"]), np.zeros(len(c.account_ids), dtype=np.int64)
    n_g = len(labels)

    def by_group(x: np.ndarray) -> np.ndarray:          # (n_acc, n_p) -> (n_g, n_p), exact int sums
        out = np.zeros((n_g, n_p), dtype=np.int64)
        np.add.at(out, gcode, x)
        return out

    sums = {k: by_group(v) for k, v in per_account.items()}

    # renewals due: last covered day (end - 1) in [B[j], B[j+1])  <=>  B[j] < end <= B[j+1]
    j = np.searchsorted(b, c.end, side="left") - 1
    due = (c.end > b[0]) & (c.end <= b[-1])
    cg, cj = gcode[c.acc[due]], j[due]
    expected = np.zeros((n_g, n_p), dtype=np.int64)
    renewed = np.zeros((n_g, n_p), dtype=np.int64)
    count_due = np.zeros((n_g, n_p), dtype=np.int64)
    np.add.at(expected, (cg, cj), c.units[due])
    np.add.at(renewed, (cg, cj), np.where(c.renewed[due], c.units[due], 0))
    np.add.at(count_due, (cg, cj), 1)
    sums["expected_renewal_arr"], sums["renewed_arr"] = expected, renewed

    with np.errstate(divide="ignore", invalid="ignore"):
        st = sums["starting_arr"].astype(np.float64)
        grr = np.where(st > 0, (sums["starting_arr"] - sums["contraction_arr"] - sums["churned_arr"]) / st,
                       np.nan)
        nrr = np.where(st > 0, (sums["starting_arr"] + sums["expansion_arr"] - sums["contraction_arr"]
                                - sums["churned_arr"]) / st, np.nan)
        sl = sums["starting_logos"].astype(np.float64)
        logo_ret = np.where(sl > 0, (sums["starting_logos"] - sums["churned_logos"]) / sl, np.nan)
        logo_churn = np.where(sl > 0, sums["churned_logos"] / sl, np.nan)
        ex = expected.astype(np.float64)
        ren_rate = np.where(ex > 0, renewed / ex, np.nan)

    gi, pi = np.divmod(np.arange(n_g * n_p), n_p)             # group-major order, then re-sorted
    cols: dict[str, Any] = {
        "period": periods.astype(str).to_numpy()[pi],
        "group": labels[gi],
        "period_start": bounds[:-1][pi],
        "period_end": bounds[1:][pi],
    }
    ratios = {"grr": grr, "nrr": nrr, "logo_retention": logo_ret, "logo_churn_rate": logo_churn,
              "renewal_rate": ren_rate}
    for col in MOVEMENT_COLUMNS[4:]:
        if col in ratios:
            cols[col] = ratios[col].ravel()
        elif col in _MONEY:
            cols[col] = _money(sums[col].ravel())
        else:
            cols[col] = sums[col].ravel()
    out = pd.DataFrame(cols)
    if grouped:
        active = (sums["starting_logos"] + sums["ending_logos"] + count_due).ravel() > 0
        out = out[active].sort_values(["period_start", "group"], kind="stable").reset_index(drop=True)
        out["group"] = out["group"].astype(object)
    else:
        out = out.drop(columns="group")
    return out


# --------------------------------------------------------------------------------------------------------
# churn-rate conversions
# --------------------------------------------------------------------------------------------------------
def _rate_like(x, out):
    if isinstance(x, pd.Series):
        return pd.Series(out, index=x.index, name=x.name)
    if np.ndim(out) == 0:
        return float(out)
    return out


def _check_rate(rate, periods_per_year):
    r = np.asarray(rate, dtype=np.float64)
    k = np.asarray(periods_per_year, dtype=np.float64)
    if np.any(~(k > 0)):
        raise ValueError("periods_per_year must be > 0")
    bad = ~np.isnan(r) & ((r < 0) | (r > 1))
    if np.any(bad):
        raise ValueError("rate must be between 0 and 1")
    return r, k


def annualized_churn_rate(rate, periods_per_year):
    """Annualise a per-period churn rate by compounding: 1 - (1 - rate) ** periods_per_year.

    8 % monthly -> 1 - 0.92**12 = 0.6323. Vectorised (scalar -> float, array -> array, Series -> Series);
    NaN passes through; rates outside [0, 1] raise ValueError.
    """
    r, k = _check_rate(rate, periods_per_year)
    return _rate_like(rate, 1.0 - (1.0 - r) ** k)


def periodic_churn_rate(annual_rate, periods_per_year):
    """Inverse of `annualized_churn_rate`: 1 - (1 - annual_rate) ** (1 / periods_per_year)."""
    r, k = _check_rate(annual_rate, periods_per_year)
    return _rate_like(annual_rate, 1.0 - (1.0 - r) ** (1.0 / k))


# --------------------------------------------------------------------------------------------------------
# JSON output: to_records lives in csforecast.jsonsafe (re-exported here for the CLI and API call sites)
# --------------------------------------------------------------------------------------------------------

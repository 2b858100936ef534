"""Renewal-window forecast: what is due in [start, end), what will renew, the spread (Monte Carlo).

Definitions (docs/forecast.md is the prose version):

* **Due in the window**: contracts that started before ``as_of`` with ``start_date <= end_date`` and a
  renewal date ``end_date`` in ``[start, end)``. Contracts of one account with the same ``end_date`` (a main
  contract and its co-termed add-ons) are one **renewal decision**: they renew or churn together.
  Contracts signed on or after ``as_of`` are new business, not part of the renewal forecast.
* **Status as of as_of**: *renewed* when a successor (``renewed_by``) started before ``as_of`` (or the
  successor is not in the table and the renewal date has passed); *churned (so far)* when the renewal date
  is before ``as_of`` and it is not renewed; *pending* otherwise. Only pending decisions are forecast.
* ``GRR_window = renewed ARR (at the ARR due) / ARR due``;
  ``NRR_window = successor ARR of the renewed decisions / ARR due`` (expansion and contraction included).

Monte Carlo (:func:`simulate_renewals`): independent Bernoulli renewals per decision given a per-draw
common shock on the churn logit (N(0, tau^2), mean-preserving, stratified over ``n_nodes`` quantiles) plus
the expansion residual. See the function for what is exact and what is a normal approximation.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import norm

__all__ = [
    "METHODS",
    "NoChampionError",
    "Simulation",
    "forecast_window",
    "estimate_tau",
    "shock_evidence",
    "renewal_book",
    "simulate_renewals",
    "summarise",
]

METHODS = ("model", "last_year", "time_series")
GROUP_BY = ("segment", "region", "csm_id", "industry", "cohort")
UNASSIGNED = "unassigned"
AT_RISK_THRESHOLD = 0.3
TOP_AT_RISK = 25
MODEL_HORIZON_DAYS = 365          # the churn model learns from snapshots <= 365 days before a renewal
EXACT_BUDGET = 100_000_000        # decisions x draws simulated as exact Bernoulli draws
CHUNK_ELEMENTS = 8_000_000        # uniforms per block (32 MB of float32)
N_NODES = 100                     # shock quantiles (stratified) when tau > 0
CALIBRATION_FILE = "forecast_calibration.json"


class NoChampionError(RuntimeError):
    """No champion churn model is registered (train one first)."""


def _ts(d) -> pd.Timestamp:
    ts = pd.Timestamp(d)
    if ts is pd.NaT:
        raise ValueError(f"not a date: {d!r}")
    return ts.tz_localize(None).normalize() if ts.tzinfo else ts.normalize()


def _f(x, nd: int | None = None):
    """JSON-safe float (None for NaN/inf)."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    return round(x, nd) if nd is not None else x


# ------------------------------------------------------------------------------------------------------
# the book of renewal decisions
# ------------------------------------------------------------------------------------------------------
def _ids(s: pd.Series) -> pd.Series:
    out = s.astype(object).where(s.notna(), None)
    return out.map(lambda v: None if v is None or str(v) == "" else str(v))


def group_labels(accounts: pd.DataFrame | None, contracts: pd.DataFrame, account_ids, group_by: str | None,
                 ) -> np.ndarray:
    """Group label per account id: an accounts column (null / unknown account -> "unassigned") or
    "cohort" (quarter of the account's first contract start)."""
    ids = pd.Series(np.asarray(account_ids, dtype=object)).astype(str)
    if group_by is None:
        return np.full(len(ids), "all", dtype=object)
    if group_by == "cohort":
        first = contracts.groupby(contracts["account_id"].astype(str))["start_date"].min()
        lab = pd.to_datetime(ids.map(first)).dt.to_period("Q").astype(str)
        return lab.where(lab != "NaT", UNASSIGNED).to_numpy(dtype=object)
    if accounts is None or group_by not in accounts.columns:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)} (a column of accounts or 'cohort'), "
                         f"not {group_by!r}")
    attr = accounts.assign(_id=accounts["account_id"].astype(str)).drop_duplicates("_id").set_index("_id")[group_by]
    v = ids.map(attr)
    return np.where(v.isna(), UNASSIGNED, v.astype(str)).astype(object)


def renewal_book(contracts: pd.DataFrame, accounts: pd.DataFrame | None, start, end, as_of,
                 group_by: str | None = None) -> pd.DataFrame:
    """One row per renewal decision (account, renewal date) due in [start, end) among contracts started
    before as_of. ``start``/``end`` may be None (unbounded).

    Columns: account_id, contract_id (main = earliest start), renewal_date, arr (ARR due), n_contracts,
    segment, group, status ("renewed" | "churned" | "pending", as known on as_of), succ_arr (successor ARR
    when renewed as of as_of, else NaN), final_renewed / final_succ_arr (with hindsight: whatever the
    table says now; for back-tests), days_ahead (renewal_date - as_of in days).
    """
    as_of = _ts(as_of)
    c = contracts.copy()
    c["contract_id"] = c["contract_id"].astype(str)
    c["account_id"] = c["account_id"].astype(str)
    c["start_date"] = pd.to_datetime(c["start_date"])
    c["end_date"] = pd.to_datetime(c["end_date"])
    info = c.set_index("contract_id")[["start_date", "arr"]]
    rb = _ids(c["renewed_by"]) if "renewed_by" in c.columns else pd.Series(None, index=c.index, dtype=object)
    rb = rb.where(rb != c["contract_id"], None)
    c["_rb"] = rb
    keep = c["end_date"].notna() & (c["end_date"] > c["start_date"]) & (c["start_date"] < as_of)
    if start is not None:
        keep &= c["end_date"] >= _ts(start)
    if end is not None:
        keep &= c["end_date"] < _ts(end)
    c = c[keep]
    cols = ["account_id", "contract_id", "renewal_date", "arr", "n_contracts", "segment", "group", "status",
            "succ_arr", "final_renewed", "final_succ_arr", "days_ahead"]
    if c.empty:
        return pd.DataFrame({k: pd.Series(dtype="datetime64[ns]" if k == "renewal_date" else
                                          float if k in ("arr", "succ_arr", "final_succ_arr", "days_ahead") else
                                          bool if k == "final_renewed" else int if k == "n_contracts" else object)
                             for k in cols})
    has = c["_rb"].notna()
    found = c["_rb"].isin(info.index)
    s_start = c["_rb"].map(info["start_date"])
    known = has & ((found & (s_start < as_of)) | (~found & (c["end_date"] < as_of)))
    c = c.assign(_has=has, _known=known, _found=found)
    c = c.sort_values(["account_id", "end_date", "start_date", "contract_id"], kind="stable")
    key = ["account_id", "end_date"]
    g = c.groupby(key, sort=False)
    book = g.agg(contract_id=("contract_id", "first"), arr=("arr", "sum"), n_contracts=("contract_id", "size"),
                 final_renewed=("_has", "any"), known_renewed=("_known", "any")).reset_index()
    # successor ARR: each distinct successor once; a successor missing from the table renews flat
    fs = c[c["_has"] & c["_found"]].drop_duplicates(key + ["_rb"])
    fs = fs.assign(_sa=fs["_rb"].map(info["arr"]).astype(float))
    flat = c[c["_has"] & ~c["_found"]]
    succ = pd.concat([fs.groupby(key)["_sa"].sum(), flat.groupby(key)["arr"].sum()], axis=1).fillna(0.0).sum(axis=1)
    book = book.merge(succ.rename("final_succ_arr").reset_index(), on=key, how="left")
    book = book.rename(columns={"end_date": "renewal_date"})
    book["final_succ_arr"] = np.where(book["final_renewed"], book["final_succ_arr"].fillna(0.0), np.nan)
    book["status"] = np.where(book["known_renewed"], "renewed",
                              np.where(book["renewal_date"] < as_of, "churned", "pending"))
    book["succ_arr"] = np.where(book["status"] == "renewed", book["final_succ_arr"], np.nan)
    book["segment"] = group_labels(accounts, contracts, book["account_id"], "segment") \
        if accounts is not None and "segment" in accounts.columns else UNASSIGNED
    book["group"] = group_labels(accounts, contracts, book["account_id"], group_by)
    book["days_ahead"] = (book["renewal_date"] - as_of).dt.days.astype(float)
    return book[cols].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------------
# Monte Carlo
# ------------------------------------------------------------------------------------------------------
@dataclass
class Simulation:
    """Draws per group (rows, in ``groups`` order) of the pending decisions' renewed ARR (at the ARR due)
    and successor ARR; ``expected_*`` are the exact expectations under the same model."""
    groups: list
    renewed: np.ndarray          # (n_groups, draws)
    successor: np.ndarray        # (n_groups, draws)
    expected_renewed: np.ndarray  # (n_groups,)
    expected_successor: np.ndarray
    n_exact: int                 # decisions simulated as exact Bernoulli draws (the rest: normal, see docs)
    n_nodes: int
    tau: float

    def total(self) -> tuple[np.ndarray, np.ndarray]:
        return self.renewed.sum(axis=0), self.successor.sum(axis=0)


def _shock_nodes(tau: float, draws: int, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified shock values (quantile midpoints of N(0, tau^2)) and the number of draws at each."""
    k = 1 if tau <= 0 else max(1, min(draws, n_nodes))
    counts = np.full(k, draws // k, dtype=np.int64)
    counts[: draws % k] += 1
    s = np.zeros(1) if k == 1 else tau * norm.ppf((np.arange(k) + 0.5) / k)
    return s, counts


def _mean_preserving_offsets(z: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """c(z) with sum_k w_k sigmoid(z + c + s_k) = sigmoid(z): the shock then leaves every expected
    probability unchanged. Solved by Newton on a grid of z and interpolated (smooth in z)."""
    if len(s) == 1 and s[0] == 0:
        return np.zeros_like(z)
    lo, hi = float(np.min(z)), float(np.max(z))
    grid = np.linspace(lo, hi, 1001) if hi > lo else np.array([lo])
    target = expit(grid)
    c = np.zeros_like(grid)
    for _ in range(50):
        q = expit(grid[:, None] + c[:, None] + s[None, :])
        f = (q * w[None, :]).sum(axis=1) - target
        d = (q * (1 - q) * w[None, :]).sum(axis=1)
        step = f / np.maximum(d, 1e-12)
        c -= np.clip(step, -2, 2)
        if np.max(np.abs(step)) < 1e-10:
            break
    return np.interp(z, grid, c) if len(grid) > 1 else np.full_like(z, c[0])


def simulate_renewals(arr, p_churn, ratio_mean=None, ratio_var=None, groups=None, *, draws: int = 10_000,
                      seed: int = 0, tau: float = 0.0, exact_budget: int = EXACT_BUDGET,
                      n_nodes: int = N_NODES) -> Simulation:
    """Simulate renewed ARR and successor ARR of independent renewal decisions, per group.

    arr, p_churn       ARR due and P(churn) per decision.
    ratio_mean/_var    E and Var of successor ARR / ARR due given renewal (default 1 and 0).
    groups             group label per decision (default: one group "all").
    tau                sd of a per-draw common shock on the churn logit. It is mean-preserving (each
                       decision's offset is solved so its expected P(churn) is unchanged) and stratified:
                       draws are split evenly over ``n_nodes`` quantile midpoints of N(0, tau^2).

    What is exact: with decisions x draws <= ``exact_budget`` every renewal is an exact Bernoulli draw
    (32-bit uniform integers against p * 2^32, in blocks). Above it, the decisions with the largest ARR relative to their group
    (a_i / sqrt(sum a^2 of the group)) are still drawn exactly -- as many as the budget allows -- and the
    remaining ones (many small decisions) are replaced per group and shock node by a bivariate normal with
    their exact conditional mean, variance and covariance (a CLT step). The expansion residual enters as a
    normal with the exact conditional variance given which decisions renewed. Expected values are exact.
    """
    a = np.asarray(arr, dtype=np.float64)
    n = len(a)
    p = np.clip(np.asarray(p_churn, dtype=np.float64), 1e-9, 1 - 1e-9)
    m = np.ones(n) if ratio_mean is None else np.asarray(ratio_mean, dtype=np.float64)
    v = np.zeros(n) if ratio_var is None else np.maximum(np.asarray(ratio_var, dtype=np.float64), 0.0)
    labels = np.full(n, "all", dtype=object) if groups is None else np.asarray(groups, dtype=object)
    uniq, code = np.unique(labels.astype(str), return_inverse=True) if n else (np.array(["all"]), np.zeros(0, int))
    G = len(uniq)
    draws = int(draws)
    rng = np.random.default_rng(seed)
    ren = np.zeros((G, draws))
    suc = np.zeros((G, draws))
    exp_r = np.bincount(code, a * (1 - p), minlength=G)
    exp_s = np.bincount(code, a * (1 - p) * m, minlength=G)
    if n == 0 or draws == 0:
        return Simulation(list(uniq), ren, suc, exp_r, exp_s, 0, 1, float(tau))

    s_nodes, counts = _shock_nodes(float(tau), draws, n_nodes)
    z = logit(p)
    c = _mean_preserving_offsets(z, s_nodes, counts / counts.sum())
    zc = z + c

    n_exact = n if n * draws <= exact_budget else int(min(n, exact_budget // draws))
    if n_exact < n:
        scale = np.sqrt(np.bincount(code, a * a, minlength=G))
        prio = a / np.maximum(scale[code], 1e-300)
        order = np.argsort(-prio, kind="stable")
        ex, rest = np.sort(order[:n_exact]), np.sort(order[n_exact:])
    else:
        ex, rest = np.arange(n), np.arange(0)

    node_of_draw = np.repeat(np.arange(len(counts)), counts)
    if len(ex):
        ne = len(ex)
        W = np.zeros((ne, 3 * G), dtype=np.float32)
        gi = code[ex]
        rows = np.arange(ne)
        W[rows, gi] = a[ex]
        W[rows, G + gi] = a[ex] * m[ex]
        W[rows, 2 * G + gi] = a[ex] * a[ex] * v[ex]
        any_var = bool(np.any(v[ex] > 0))
        # churn iff a uniform 32-bit integer falls below p * 2^32 (exact to 2^-32); one threshold row per node
        T = np.empty((len(counts), ne), dtype=np.uint32)
        for k in range(len(counts)):
            T[k] = np.minimum(np.floor(expit(zc[ex] + s_nodes[k]) * 2.0 ** 32), 2.0 ** 32 - 1)
        block = int(max(1, min(CHUNK_ELEMENTS // ne, draws)))
        R = np.empty((block, ne), dtype=np.float32)
        for d0 in range(0, draws, block):
            b = min(block, draws - d0)
            nodes = node_of_draw[d0:d0 + b]
            thr = T[nodes[0]] if nodes[0] == nodes[-1] else T[nodes]
            u = rng.bit_generator.random_raw((b * ne + 1) // 2).view(np.uint32)[: b * ne].reshape(b, ne)
            np.greater_equal(u, thr, out=R[:b], casting="unsafe")           # 1.0 = renewed
            out = (R[:b] @ W).astype(np.float64)                            # (b, 3G)
            ren[:, d0:d0 + b] += out[:, :G].T
            suc[:, d0:d0 + b] += out[:, G:2 * G].T
            if any_var:
                suc[:, d0:d0 + b] += np.sqrt(np.maximum(out[:, 2 * G:], 0)).T * rng.standard_normal((G, b))
    if len(rest):
        ar, mr, vr, gr = a[rest], m[rest], v[rest], code[rest]
        cap = np.bincount(gr, ar, minlength=G)
        col = 0
        for k, cnt in enumerate(counts):
            q = 1.0 - expit(zc[rest] + s_nodes[k])                    # P(renew) at this node
            mx = np.bincount(gr, ar * q, minlength=G)
            my = np.bincount(gr, ar * q * mr, minlength=G)
            vx = np.bincount(gr, ar * ar * q * (1 - q), minlength=G)
            vy = np.bincount(gr, ar * ar * (q * (vr + mr * mr) - (q * mr) ** 2), minlength=G)
            cxy = np.bincount(gr, ar * ar * mr * q * (1 - q), minlength=G)
            z1, z2 = rng.standard_normal((2, G, cnt))
            sx = np.sqrt(np.maximum(vx, 0))
            bxy = np.where(sx > 0, cxy / np.maximum(sx, 1e-300), 0.0)
            ry = np.sqrt(np.maximum(vy - bxy ** 2, 0))
            ren[:, col:col + cnt] += np.clip(mx[:, None] + sx[:, None] * z1, 0, cap[:, None])
            suc[:, col:col + cnt] += np.maximum(my[:, None] + bxy[:, None] * z1 + ry[:, None] * z2, 0)
            col += cnt
    return Simulation(list(uniq), ren, np.maximum(suc, 0), exp_r, exp_s, int(len(ex)), len(s_nodes), float(tau))


# ------------------------------------------------------------------------------------------------------
# interval calibration: implied shocks of past windows
# ------------------------------------------------------------------------------------------------------
def shock_evidence(arr, p_churn, actual_renewed: float) -> tuple[float, float, float]:
    """What one past window says about the common shock: (error = actual - expected renewed ARR,
    V = Bernoulli variance sum a^2 p (1 - p), D = d expected / d shock = sum a p (1 - p)).

    To first order a common logit shock of sd tau adds tau^2 D^2 to the variance, so the standardised
    error z(tau) = error / sqrt(V + tau^2 D^2) is N(0, 1) when tau is right."""
    a = np.asarray(arr, dtype=float)
    p = np.clip(np.asarray(p_churn, dtype=float), 1e-9, 1 - 1e-9)
    if len(a) == 0 or a.sum() <= 0 or not np.isfinite(actual_renewed):
        return float("nan"), float("nan"), float("nan")
    err = float(actual_renewed - (a * (1 - p)).sum())
    return err, float((a * a * p * (1 - p)).sum()), float((a * p * (1 - p)).sum())


def estimate_tau(evidence, coverage: float = 0.8, tau_max: float = 3.0) -> float:
    """The smallest tau whose central ``coverage`` interval would have covered ``coverage`` of the past
    windows: the ``coverage``-quantile of |z_j(tau)| equals the normal quantile (1.2816 for 80 %).

    A calibration of the interval width on past errors only (conformal in spirit, with the shape of a
    common logit shock); bias of the past forecasts counts as spread. Windows: (error, V, D) triples.
    With a handful of windows that quantile is noisy and often says 0, so tau is also at least the
    moment estimate: the tau at which the mean squared standardised error is 1; the larger of the two."""
    ev = np.asarray([e for e in evidence if all(np.isfinite(e)) and e[1] + e[2] > 0], dtype=float).reshape(-1, 3)
    if len(ev) == 0:
        return 0.0
    err, V, D = ev[:, 0], ev[:, 1], ev[:, 2]
    target = float(norm.ppf(0.5 + coverage / 2))

    def q(tau):
        return float(np.quantile(np.abs(err) / np.sqrt(np.maximum(V + tau * tau * D * D, 1e-300)), coverage))

    def m(tau):  # mean squared standardised error: 1 when tau is right
        return float(np.mean(err * err / np.maximum(V + tau * tau * D * D, 1e-300)))

    return max(_solve_decreasing(q, target, tau_max), _solve_decreasing(m, 1.0, tau_max))


def _solve_decreasing(f, target: float, hi: float) -> float:
    """The smallest tau in [0, hi] with f(tau) <= target, for f decreasing in tau (0 or hi at the ends)."""
    if f(0.0) <= target:
        return 0.0
    if f(hi) > target:
        return hi
    lo = 0.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return float(hi)


def load_calibration(home: Path | None = None) -> dict | None:
    """tau per method from the last `csforecast backtest` (written to <home>/forecast_calibration.json)."""
    from csforecast.config import get_settings

    f = Path(home or get_settings().home) / CALIBRATION_FILE
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


def save_calibration(obj: dict, home: Path | None = None) -> Path:
    from csforecast.config import get_settings

    f = Path(home or get_settings().home) / CALIBRATION_FILE
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_name(f.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(f)
    return f


# ------------------------------------------------------------------------------------------------------
# summaries
# ------------------------------------------------------------------------------------------------------
def _quantiles(x: np.ndarray) -> dict:
    q = np.quantile(x, [0.1, 0.5, 0.9]) if len(x) else [np.nan] * 3
    return {"p10": _f(q[0]), "p50": _f(q[1]), "p90": _f(q[2])}


def _ratio_q(x: np.ndarray, den: float) -> dict:
    if den <= 0:
        return {"p10": None, "p50": None, "p90": None}
    return _quantiles(x / den)


def summarise(book: pd.DataFrame, p_churn: np.ndarray, ratio_mean: np.ndarray, ratio_var: np.ndarray,
              sim: Simulation | None, mask=None) -> dict:
    """renewals_due / expected / intervals for a slice of the book (``mask``) given per-pending-decision
    p_churn and ratio moments (aligned with the book's pending rows) and the simulation's draws for that
    slice (``sim`` rows summed over the slice's groups, or None when nothing is pending)."""
    mask = np.ones(len(book), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    b = book[mask]
    pend = (book["status"] == "pending").to_numpy()
    pm = mask[pend]
    a_p = book.loc[pend, "arr"].to_numpy(float)[pm]
    p = np.asarray(p_churn, float)[pm]
    mm = np.asarray(ratio_mean, float)[pm]
    due = float(b["arr"].sum())
    ren_known = float(b.loc[b["status"] == "renewed", "arr"].sum())
    succ_known = float(b.loc[b["status"] == "renewed", "succ_arr"].sum())
    churned_known = float(b.loc[b["status"] == "churned", "arr"].sum())
    e_ren = ren_known + float((a_p * (1 - p)).sum())
    e_succ = succ_known + float((a_p * (1 - p) * mm).sum())
    e_churn = churned_known + float((a_p * p).sum())
    out = {
        "renewals_due": {"count": int(len(b)), "arr": _f(due), "pending_count": int(pm.sum()),
                         "pending_arr": _f(a_p.sum()), "renewed_so_far_arr": _f(ren_known),
                         "churned_so_far_arr": _f(churned_known)},
        "expected": {"renewed_arr": _f(e_ren), "churned_arr": _f(e_churn),
                     "grr": _f(e_ren / due) if due > 0 else None, "nrr": _f(e_succ / due) if due > 0 else None,
                     "arr_change": _f(e_succ - e_ren), "successor_arr": _f(e_succ)},
    }
    if sim is not None:
        r_draw, s_draw = sim
        r_draw = ren_known + r_draw
        s_draw = succ_known + s_draw
    else:
        r_draw, s_draw = np.array([ren_known]), np.array([succ_known])
    out["intervals"] = {"renewed_arr": _quantiles(r_draw), "grr": _ratio_q(r_draw, due),
                        "nrr": _ratio_q(s_draw, due)}
    return out


def _sim_slice(sim: Simulation, labels) -> tuple[np.ndarray, np.ndarray]:
    idx = [i for i, g in enumerate(sim.groups) if g in set(labels)]
    if not idx:
        return np.zeros(sim.renewed.shape[1]), np.zeros(sim.renewed.shape[1])
    return sim.renewed[idx].sum(axis=0), sim.successor[idx].sum(axis=0)


def method_results(book: pd.DataFrame, p_churn, ratio_mean, ratio_var, *, draws: int, seed: int, tau: float,
                   exact_budget: int = EXACT_BUDGET, group_col: str = "group") -> dict:
    """Overall and per-group summaries of one method (one simulation shared by all groups)."""
    pend = (book["status"] == "pending").to_numpy()
    sim = None
    if pend.any():
        sim = simulate_renewals(book.loc[pend, "arr"].to_numpy(float), p_churn, ratio_mean, ratio_var,
                                book.loc[pend, group_col].astype(str).to_numpy(), draws=draws, seed=seed, tau=tau,
                                exact_budget=exact_budget)
    overall = summarise(book, p_churn, ratio_mean, ratio_var, sim.total() if sim else None)
    groups = {}
    for g in sorted(book[group_col].astype(str).unique()):
        mk = (book[group_col].astype(str) == g).to_numpy()
        sl = _sim_slice(sim, [g]) if sim is not None and (mk & pend).any() else None
        groups[g] = summarise(book, p_churn, ratio_mean, ratio_var, sl, mk)
    return {"overall": overall, "groups": groups,
            "simulation": {"n_exact": sim.n_exact if sim else 0, "n_nodes": sim.n_nodes if sim else 0}}


def _flat(res: dict) -> dict:
    """A method's overall result as the flat dict used under "methods"."""
    e, i = res["expected"], res["intervals"]
    return {**{k: e[k] for k in ("renewed_arr", "churned_arr", "grr", "nrr", "arr_change")},
            "intervals": i}


def disagreements(expected: dict[str, float], share: float, scope: str = "overall") -> list[dict]:
    """Pairs of methods whose expected renewed ARR differ by more than ``share`` (relative to their mean)."""
    out = []
    names = [k for k, v in expected.items() if v is not None and np.isfinite(v)]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            va, vb = expected[a], expected[b]
            mean = 0.5 * (va + vb)
            rel = abs(va - vb) / mean if mean > 0 else 0.0
            if rel > share:
                out.append({"scope": scope, "methods": [a, b], "relative_difference": _f(rel, 6),
                            "renewed_arr": {a: _f(va), b: _f(vb)},
                            "message": f"{a} and {b} disagree on expected renewed ARR by {rel:.1%} "
                                       f"(> {share:.0%}) for {scope}: treat this forecast with care"})
    return out


# ------------------------------------------------------------------------------------------------------
# scoring rows
# ------------------------------------------------------------------------------------------------------
def scoring_rows(pending: pd.DataFrame, snapshot: pd.DataFrame, as_of) -> tuple[pd.DataFrame, np.ndarray]:
    """Snapshot rows (as of as_of) for the pending decisions, in the book's order. A decision whose renewal
    date is not the account's next renewal gets that decision's contract_id / renewal_date /
    days_to_renewal. Returns (rows, found mask); rows of accounts missing from the snapshot are NaN."""
    snap = snapshot.drop_duplicates("account_id").set_index("account_id")
    found = pending["account_id"].astype(str).isin(snap.index.astype(str)).to_numpy()
    snap.index = snap.index.astype(str)
    rows = snap.reindex(pending["account_id"].astype(str).to_numpy()).reset_index()
    rows["account_id"] = pending["account_id"].astype(str).to_numpy()
    rows["as_of"] = _ts(as_of)
    rows["contract_id"] = pending["contract_id"].to_numpy()
    rows["renewal_date"] = pd.to_datetime(pending["renewal_date"]).to_numpy()
    if "days_to_renewal" in rows.columns:
        rows["days_to_renewal"] = pending["days_ahead"].to_numpy(float)
    return rows, found


def predict_churn(estimator, rows: pd.DataFrame, found: np.ndarray, fallback: float) -> np.ndarray:
    """P(churn) from any object with predict_proba (uses feature_names_in_ when it has them)."""
    p = np.full(len(rows), np.nan)
    if found.any():
        X = rows.loc[found]
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            X = X[list(names)]
        p[found] = np.asarray(estimator.predict_proba(X))[:, 1]
    p = np.where(np.isfinite(p), p, fallback)
    return np.clip(p, 0.0, 1.0)


def expansion_grid(source, as_of: date, quarters: int = 8) -> list[date]:
    """Snapshot dates for fitting the expansion model on the fly: every 3 months back from as_of (8 by
    default), not earlier than 90 days after the first activity (trailing usage windows need history)."""
    from datetime import timedelta

    col = ("usage", "date") if source.has("usage") else ("contracts", "start_date")
    first = source.table(col[0])[col[1]].min().to_pyarrow().as_py()
    first = pd.Timestamp(first).date() + timedelta(days=90)
    dates = [(pd.Timestamp(as_of) - pd.DateOffset(months=3 * k)).date() for k in range(1, quarters + 1)]
    return sorted(d for d in dates if d >= first)


def decision_rows(snaps: pd.DataFrame, cutoff) -> pd.DataFrame:
    """Snapshot rows in the 365 days before a renewal resolved before ``cutoff`` (pipelines/churn rows)."""
    cut = _ts(cutoff)
    s = snaps
    return s[(s["renewal_date"] < cut) & s["label_churn"].notna() & (s["days_to_renewal"] <= MODEL_HORIZON_DAYS)
             & (s["days_to_renewal"] >= 0)]


def fit_expansion(rows: pd.DataFrame, features: list[str]):
    from csforecast.forecast.expansion import ExpansionModel

    r = rows[rows["label_arr_change"].notna()]
    return ExpansionModel().fit(r[features], r["label_arr_change"].to_numpy(float), sample_time=r["renewal_date"])


# ------------------------------------------------------------------------------------------------------
# the window forecast
# ------------------------------------------------------------------------------------------------------
def _load_champion():
    from csforecast.tracking import store

    mv = store.champion_version("churn")
    if mv is None:
        raise NoChampionError("no champion churn model is registered: run `csforecast train --family churn` first")
    est = store.load_estimator(f"models:/{store.model_name('churn')}@champion")
    return est, str(mv.version)


def forecast_window(source, start, end, group_by: str | None = None, as_of=None, churn_estimator=None, *,
                    model_version: str | None = None, draws: int | None = None, seed: int | None = None,
                    tau: float | dict | None = None, at_risk_threshold: float = AT_RISK_THRESHOLD,
                    top: int = TOP_AT_RISK, exact_budget: int = EXACT_BUDGET) -> dict:
    """Forecast the renewals due in [start, end) as of ``as_of`` (default: the data end). See
    docs/forecast.md for every key of the result.

    churn_estimator   anything with ``predict_proba`` (column 1 = P(churn)); default: the champion churn
                      model from the registry (NoChampionError when there is none and something is pending).
    tau               common-shock sd on the churn logit (float, or {method: float}); default: the values
                      written by the last ``csforecast backtest`` (forecast_calibration.json), else 0.
    """
    from csforecast.config import get_settings
    from csforecast.features.snapshot import build_snapshots, data_end, feature_columns
    from csforecast.forecast import baselines

    fs = get_settings().forecast
    draws = int(draws or fs.draws)
    seed = int(fs.seed if seed is None else seed)
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    start_ts, end_ts = _ts(start), _ts(end)
    if end_ts <= start_ts:
        raise ValueError(f"the window is empty: end {end_ts.date()} is not after start {start_ts.date()}")
    de = data_end(source)
    warn: list[str] = []
    as_of_ts = _ts(as_of) if as_of is not None else _ts(de)
    if as_of_ts > _ts(de):
        warn.append(f"as_of {as_of_ts.date()} is after the data end {de}: using {de}")
        as_of_ts = _ts(de)
    contracts = source.frame("contracts")
    accounts = source.frame("accounts")
    book = renewal_book(contracts, accounts, start_ts, end_ts, as_of_ts, group_by)
    pend = (book["status"] == "pending").to_numpy()
    pending = book[pend]
    n_p = int(pend.sum())

    # --- per-method probabilities and ratio moments for the pending decisions --------------------------
    probs: dict[str, np.ndarray] = {}
    ratios: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    details: dict[str, dict] = {m: {} for m in METHODS}
    history = baselines.renewal_history(contracts, accounts, as_of_ts)
    if n_p:
        if churn_estimator is None:
            churn_estimator, model_version = _load_champion()
        grid = expansion_grid(source, as_of_ts.date())
        snaps = build_snapshots(source, grid + [as_of_ts.date()], end=as_of_ts.date())
        now = snaps[snaps["as_of"] == as_of_ts]
        rows, found = scoring_rows(pending, now, as_of_ts)
        hist_rate = baselines.overall_churn_rate(history)
        probs["model"] = predict_churn(churn_estimator, rows, found, hist_rate)
        if (~found).any():
            warn.append(f"{int((~found).sum())} pending renewal(s) have no snapshot row as of {as_of_ts.date()} "
                        f"(account missing from accounts or created later): scored at the historical churn "
                        f"rate {hist_rate:.3f}")
        far = pending["days_ahead"].to_numpy() > MODEL_HORIZON_DAYS
        if far.any():
            warn.append(f"{int(far.sum())} renewal(s) ({pending.loc[far, 'arr'].sum():,.0f} ARR) are more than "
                        f"{MODEL_HORIZON_DAYS} days after as_of: the churn model is out of its training range "
                        f"there (it learns from snapshots at most {MODEL_HORIZON_DAYS} days before a renewal)")
        train = decision_rows(snaps[snaps["as_of"] < as_of_ts], as_of_ts)
        exp_model = fit_expansion(train, feature_columns(snaps))
        m, v = exp_model.ratio_moments(rows)
        ratios["model"] = (m, v)
        details["model"] = {"expansion_model": exp_model.summary()}
        resid_var = exp_model.var_exp_resid_ / max(exp_model.mean_exp_resid_, 1e-12) ** 2
        for name, fn in (("last_year", baselines.last_year), ("time_series", baselines.time_series)):
            pc, ratio, info = fn(pending, history, start_ts, end_ts, as_of_ts)
            probs[name] = pc
            ratios[name] = (ratio, ratio * ratio * resid_var)
            details[name] = info
    else:
        for name in METHODS:
            probs[name] = np.zeros(0)
            ratios[name] = (np.zeros(0), np.zeros(0))

    # --- tau ------------------------------------------------------------------------------------------
    tau_source = "argument"
    if tau is None:
        cal = load_calibration()
        if cal and isinstance(cal.get("tau"), dict):
            tau = cal["tau"]
            tau_source = f"backtest of {cal.get('created', '?')} (data {cal.get('data_hash', '?')})"
        else:
            tau = 0.0
            tau_source = "none"
            if n_p:
                warn.append("intervals assume independent renewals (no common shock): run `csforecast "
                            "backtest` to calibrate them on past quarters")
    taus = {m: float(tau.get(m, 0.0) if isinstance(tau, dict) else tau) for m in METHODS}

    # --- simulate every method ------------------------------------------------------------------------
    results = {}
    for k, name in enumerate(METHODS):
        results[name] = method_results(book, probs[name], *ratios[name], draws=draws, seed=seed + k,
                                       tau=taus[name], exact_budget=exact_budget)
    main = results["model"]

    # --- disagreement ---------------------------------------------------------------------------------
    share = float(fs.disagreement_share)
    risk = disagreements({m: results[m]["overall"]["expected"]["renewed_arr"] for m in METHODS}, share)
    if group_by is not None:
        for g in main["groups"]:
            risk += disagreements({m: results[m]["groups"][g]["expected"]["renewed_arr"] for m in METHODS},
                                  share, scope=f"{group_by}={g}")

    # --- at risk and worst case -----------------------------------------------------------------------
    at_risk = []
    worst_at_risk = 0.0
    if n_p:
        pm = probs["model"]
        ar = pending.assign(p_churn=pm, expected_churned_arr=pm * pending["arr"].to_numpy(float))
        worst_at_risk = float(ar.loc[ar["p_churn"] > at_risk_threshold, "arr"].sum())
        top_rows = ar.sort_values(["expected_churned_arr", "arr"], ascending=False).head(top)
        for r in top_rows.itertuples(index=False):
            item = {"account_id": r.account_id, "contract_id": r.contract_id, "arr": _f(r.arr, 2),
                    "p_churn": _f(r.p_churn, 6), "expected_churned_arr": _f(r.expected_churned_arr, 2),
                    "renewal_date": pd.Timestamp(r.renewal_date).date().isoformat(), "segment": r.segment}
            if group_by is not None:
                item[group_by] = r.group
            at_risk.append(item)
    o = main["overall"]
    due = o["renewals_due"]["arr"] or 0.0
    churned_so_far = o["renewals_due"]["churned_so_far_arr"] or 0.0
    worst = churned_so_far + worst_at_risk

    def _group_obj(g):
        r = main["groups"][g]
        return {"group": g, **r, "methods": {m: _flat(results[m]["groups"][g]) for m in METHODS}}

    return {
        "window": {"start": start_ts.date().isoformat(), "end": end_ts.date().isoformat(),
                   "end_exclusive": True, "group_by": group_by, "data_end": str(de)},
        "as_of": as_of_ts.date().isoformat(),
        "renewals_due": {"count": o["renewals_due"]["count"], "arr": o["renewals_due"]["arr"],
                         **{k: v for k, v in o["renewals_due"].items() if k not in ("count", "arr")}},
        "expected": o["expected"],
        "intervals": o["intervals"],
        "groups": [_group_obj(g) for g in main["groups"]] if group_by is not None else [],
        "methods": {m: {**_flat(results[m]["overall"]), **({"detail": details[m]} if details[m] else {})}
                    for m in METHODS},
        "forecast_risk": risk,
        "at_risk": at_risk,
        "worst_case": {"threshold": at_risk_threshold, "churned_so_far_arr": _f(churned_so_far),
                       "at_risk_arr": _f(worst_at_risk), "churned_arr": _f(worst),
                       "renewed_arr": _f(due - worst), "grr": _f((due - worst) / due) if due > 0 else None},
        "model_version": model_version,
        "simulation": {"draws": draws, "seed": seed, "tau": taus, "tau_source": tau_source,
                       "n_exact": main["simulation"]["n_exact"], "n_pending": n_p,
                       "shock_nodes": main["simulation"]["n_nodes"]},
        "warnings": warn,
    }


"""The Monte Carlo engine of the renewal forecast and its interval calibration.

Monte Carlo (:func:`simulate_renewals`): independent Bernoulli renewals per decision given a per-draw
common shock on the churn logit (N(0, tau^2), mean-preserving, stratified over ``n_nodes`` quantiles) plus
the expansion residual. See the function for what is exact and what is a normal approximation.

Interval calibration: the common-shock sd tau is estimated from the implied shocks of past windows
(:func:`shock_evidence`, :func:`estimate_tau`) and stored by ``csforecast backtest`` in
forecast_calibration.json (:func:`save_calibration`, :func:`load_calibration`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import norm

from csforecast.jsonsafe import finite_float

__all__ = ["Simulation", "simulate_renewals", "shock_evidence", "estimate_tau", "load_calibration",
           "save_calibration", "summarise", "method_results", "disagreements", "flat_result"]

EXACT_BUDGET = 100_000_000        # decisions x draws simulated as exact Bernoulli draws
CHUNK_ELEMENTS = 8_000_000        # uniforms per block (32 MB of float32)
N_NODES = 100                     # shock quantiles (stratified) when tau > 0
CALIBRATION_FILE = "forecast_calibration.json"


def _f(x, nd: int | None = None):
    """JSON-safe float (None for NaN/inf)."""
    return finite_float(x, nd)


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


def flat_result(res: dict) -> dict:
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

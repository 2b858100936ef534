"""The Monte Carlo engine of the renewal forecast and its interval calibration.

Monte Carlo (:func:`simulate_renewals`): independent Bernoulli renewals per decision given a per-draw
common shock on the churn logit (N(0, tau^2), mean-preserving, stratified over ``n_nodes`` quantiles) plus
the expansion residual. See the function for what is exact and what is a normal approximation.

Interval calibration: the common-shock sd tau is estimated from the implied shocks of past windows, beyond
the spread the draws already have (:func:`shock_evidence`, :func:`map_spread`), with split-conformal's
rank (:func:`estimate_tau`), and stored by ``csforecast backtest`` in
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

__all__ = ["Simulation", "MethodInput", "simulate_renewals", "ratio_split_normal", "shock_evidence", "map_spread",
           "estimate_tau", "estimate_tau_by_segment", "load_calibration", "save_calibration", "known_outcomes",
           "summarise", "method_results", "disagreements", "flat_result"]

EXACT_BUDGET = 100_000_000        # decisions x draws simulated as exact Bernoulli draws
CHUNK_ELEMENTS = 8_000_000        # uniforms per block (32 MB of float32)
N_NODES = 100                     # shock quantiles (stratified) when tau > 0
CALIBRATION_FILE = "forecast_calibration.json"


def _f(x, nd: int | None = None):
    """JSON-safe float (None for NaN/inf)."""
    return finite_float(x, nd)


@dataclass
class Simulation:
    """Draws per group (rows, in ``groups`` order) of the pending decisions' outcomes, and the exact
    expectations under the same model. Money columns (all ``(n_groups, draws)``):

    ``due``          ARR due of the pending decisions in the draw (projected chain decisions count only in
                     draws where they are reached; decisions on the books always count);
    ``renewed``      ARR due of the renewed decisions;
    ``contraction``  sum over renewed decisions of max(0, ARR due - successor ARR);
    ``expansion``    sum over renewed decisions of max(0, successor ARR - ARR due) -- at renewal only;
    ``successor``    = renewed - contraction + expansion;
    ``addon``        mid-term add-on ARR (its own, independent draws; zero without add-on inputs).
    """
    groups: list
    renewed: np.ndarray
    successor: np.ndarray
    expected_renewed: np.ndarray
    expected_successor: np.ndarray
    n_exact: int                 # decisions simulated as exact Bernoulli draws (the rest: normal, see docs)
    n_nodes: int
    tau: float
    due: np.ndarray | None = None
    contraction: np.ndarray | None = None
    expansion: np.ndarray | None = None
    addon: np.ndarray | None = None
    expected_due: np.ndarray | None = None
    expected_contraction: np.ndarray | None = None
    expected_expansion: np.ndarray | None = None
    expected_addon: np.ndarray | None = None
    expected_decisions: np.ndarray | None = None

    def total(self) -> tuple[np.ndarray, np.ndarray]:
        return self.renewed.sum(axis=0), self.successor.sum(axis=0)

    def rows(self, labels) -> dict[str, np.ndarray]:
        """Draws summed over the groups in ``labels``: {due, renewed, contraction, expansion, successor,
        addon} (1-D arrays; zeros when none of the labels is a group of the simulation)."""
        want = {str(x) for x in labels}
        idx = [i for i, g in enumerate(self.groups) if str(g) in want]
        d = self.renewed.shape[1]
        out = {}
        for k in ("due", "renewed", "contraction", "expansion", "successor", "addon"):
            m = getattr(self, k)
            out[k] = m[idx].sum(axis=0) if idx and m is not None else np.zeros(d)
        return out


def ratio_split_normal(ratio_mean, ratio_var) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(E[c], Var[c], E[e], Var[e]) of contraction c = max(0, 1 - r) and expansion e = max(0, r - 1) for a
    normal ratio r ~ N(ratio_mean, ratio_var) (per unit of ARR due, given renewal). E[e] - E[c] = E[r] - 1
    exactly, and c e = 0, so Cov(c, e) = -E[c] E[e]."""
    m = np.asarray(ratio_mean, dtype=float)
    sd = np.sqrt(np.maximum(np.asarray(ratio_var, dtype=float), 0.0))

    def pos(mu):  # E[X+], E[(X+)^2] for X ~ N(mu, sd^2)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(sd > 0, mu / np.where(sd > 0, sd, 1.0), np.sign(mu) * np.inf)
        cdf, pdf = norm.cdf(t), np.where(np.isfinite(t), norm.pdf(t), 0.0)
        e1 = np.where(sd > 0, mu * cdf + sd * pdf, np.maximum(mu, 0.0))
        e2 = np.where(sd > 0, (mu * mu + sd * sd) * cdf + mu * sd * pdf, np.maximum(mu, 0.0) ** 2)
        return e1, np.maximum(e2 - e1 * e1, 0.0)

    c_mean, c_var = pos(1.0 - m)
    e_mean, e_var = pos(m - 1.0)
    return c_mean, c_var, e_mean, e_var


def _shock_nodes(tau: float, draws: int, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified shock values (quantile midpoints of N(0, tau^2)) and the number of draws at each."""
    k = 1 if tau <= 0 else max(1, min(draws, n_nodes))
    counts = np.full(k, draws // k, dtype=np.int64)
    counts[: draws % k] += 1
    s = np.zeros(1) if k == 1 else tau * norm.ppf((np.arange(k) + 0.5) / k)
    return s, counts


def _node_maps(shock: bool, maps, draws: int, n_nodes: int, seed: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per node: the slope and intercept of the map applied to every churn logit, the standard-normal shock
    value (scaled by each decision's tau) and the number of draws at the node. Nodes pair a calibration map
    (``maps``, (K, 2) slope/intercept pairs, spread evenly over the nodes) with a stratified N(0, 1) shock
    quantile in random order; one identity node when there is neither."""
    k = max(1, min(draws, n_nodes)) if shock or (maps is not None and len(maps)) else 1
    counts = np.full(k, draws // k, dtype=np.int64)
    counts[: draws % k] += 1
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7])
    u = norm.ppf((np.arange(k) + 0.5) / k)[rng.permutation(k)] if shock and k > 1 else np.zeros(k)
    if maps is None or len(maps) == 0:
        return np.ones(k), np.zeros(k), u, counts
    maps = np.asarray(maps, dtype=float).reshape(-1, 2)
    pick = maps[np.arange(k) * len(maps) // k] if k <= len(maps) else maps[np.arange(k) % len(maps)]
    return pick[:, 0], pick[:, 1], u, counts


def _mean_preserving_offsets(z: np.ndarray, s: np.ndarray, w: np.ndarray, a: np.ndarray | None = None) -> np.ndarray:
    """c(z) with sum_k w_k sigmoid(a_k z + c + s_k) = sigmoid(z) (a_k = 1 by default): the shock then leaves
    every expected probability unchanged. Solved by Newton on a grid of z and interpolated (smooth in z)."""
    a = np.ones(len(s)) if a is None else np.asarray(a, dtype=float)
    if len(s) == 1 and s[0] == 0 and a[0] == 1:
        return np.zeros_like(z)
    lo, hi = float(np.min(z)), float(np.max(z))
    grid = np.linspace(lo, hi, 1001) if hi > lo else np.array([lo])
    target = expit(grid)
    c = np.zeros_like(grid)
    for _ in range(60):
        q = expit(grid[:, None] * a[None, :] + c[:, None] + s[None, :])
        f = (q * w[None, :]).sum(axis=1) - target
        d = (q * (1 - q) * w[None, :]).sum(axis=1)
        step = f / np.maximum(d, 1e-12)
        c -= np.clip(step, -2, 2)
        if np.max(np.abs(step)) < 1e-10:
            break
    return np.interp(z, grid, c) if len(grid) > 1 else np.full_like(z, c[0])


def _chain_order(prev: np.ndarray) -> list[np.ndarray]:
    """Projected decisions by chain depth: [indices at depth 1, depth 2, ...] (depth 0 = on the books).
    Parents come before their children in the arrays, so one pass in index order sets every depth."""
    depth = np.zeros(len(prev), dtype=np.int64)
    for i in np.flatnonzero(prev >= 0):
        depth[i] = depth[prev[i]] + 1
    top = int(depth.max()) if len(depth) else 0
    return [np.flatnonzero(depth == d) for d in range(1, top + 1)]


def simulate_renewals(arr, p_churn, ratio_mean=None, ratio_var=None, groups=None, *, split=None, prev=None,
                      maps=None, addon=None, draws: int = 10_000, seed: int = 0, tau: float = 0.0,
                      exact_budget: int = EXACT_BUDGET, n_nodes: int = N_NODES) -> Simulation:
    """Simulate the outcomes of pending renewal decisions, per group (see :class:`Simulation`).

    arr, p_churn       ARR due and P(churn) per decision.
    ratio_mean/_var    E and Var of successor ARR / ARR due given renewal (default 1 and 0).
    split              (E[c], Var[c], E[e], Var[e]) per decision: contraction c = max(0, 1 - ratio) and
                       expansion e = max(0, ratio - 1) given renewal; default: from a normal ratio with the
                       moments above (:func:`ratio_split_normal`). Cov(c, e) = -E[c] E[e] (never both).
    groups             group label per decision (default: one group "all").
    prev               per decision, the index of the decision it follows in a chain of short contracts
                       (-1: on the books). A projected decision is reached only in draws where its
                       predecessor renewed; parents must come before their children.
    maps               (K, 2) calibration maps (slope, intercept on the churn logit), e.g. a bootstrap of
                       the churn model's calibration; each draw applies one of them to every decision.
    tau                sd of a per-draw common shock on the churn logit (on top of the maps): a float, or one
                       value per decision (e.g. per segment: one N(0, 1) draw scaled by each). Maps and shock
                       are mean-preserving (each decision's offset is solved so its expected P(churn) is
                       unchanged) and stratified over ``n_nodes`` nodes.
    addon              (mean, var, groups) of mid-term add-on ARR per account; drawn per group as an
                       independent normal (clipped at 0).

    What is exact: with decisions x draws <= ``exact_budget`` every renewal is an exact Bernoulli draw
    (32-bit uniform integers against p * 2^32, in blocks). Above it, projected decisions and then the
    decisions with the largest ARR relative to their group (a_i / sqrt(sum a^2 of the group)) are still drawn
    exactly -- as many as the budget allows -- and the remaining ones (many small decisions) are replaced per
    group and node by a trivariate normal (renewed, contraction, expansion) with their exact conditional
    moments (a CLT step). Contraction and expansion of the exactly drawn decisions enter as a bivariate normal
    with the exact conditional moments given which decisions renewed. Expected values are exact (projected
    decisions: under independence of the chain's draws).
    """
    a = np.asarray(arr, dtype=np.float64)
    n = len(a)
    p = np.clip(np.asarray(p_churn, dtype=np.float64), 1e-9, 1 - 1e-9)
    m = np.ones(n) if ratio_mean is None else np.asarray(ratio_mean, dtype=np.float64)
    v = np.zeros(n) if ratio_var is None else np.maximum(np.asarray(ratio_var, dtype=np.float64), 0.0)
    cm, cv, em, ev = ratio_split_normal(m, v) if split is None else (np.asarray(x, dtype=np.float64) for x in split)
    cv, ev = np.maximum(cv, 0.0), np.maximum(ev, 0.0)
    cce = -cm * em
    pv = np.full(n, -1, dtype=np.int64) if prev is None else np.asarray(prev, dtype=np.int64)
    labels = np.full(n, "all", dtype=object) if groups is None else np.asarray(groups, dtype=object)
    add_m = add_v = add_g = None
    if addon is not None:
        add_m, add_v, add_g = (np.asarray(addon[0], float), np.asarray(addon[1], float),
                               np.asarray(addon[2], dtype=object).astype(str))
    all_labels = labels.astype(str) if add_g is None else np.concatenate([labels.astype(str), add_g])
    uniq = np.unique(all_labels) if len(all_labels) else np.array(["all"])
    code = np.searchsorted(uniq, labels.astype(str)) if n else np.zeros(0, int)
    G = len(uniq)
    draws = int(draws)
    rng = np.random.default_rng(seed)

    # exact expectations (chains: P(reached) = product of the predecessors' renewal probabilities)
    reach = np.ones(n)
    for lvl in _chain_order(pv):
        reach[lvl] = reach[pv[lvl]] * (1 - p[pv[lvl]])
    q_r = reach * (1 - p)
    exp_due = np.bincount(code, a * reach, minlength=G)
    exp_r = np.bincount(code, a * q_r, minlength=G)
    exp_c = np.bincount(code, a * q_r * cm, minlength=G)
    exp_e = np.bincount(code, a * q_r * em, minlength=G)
    exp_s = exp_r - exp_c + exp_e
    exp_add = np.zeros(G)
    if add_m is not None and len(add_m):
        exp_add = np.bincount(np.searchsorted(uniq, add_g), add_m, minlength=G)
    ren, con, exp_, due = (np.zeros((G, draws)) for _ in range(4))
    add = np.zeros((G, draws))

    exp_n = np.bincount(code, reach, minlength=G)

    def result(n_exact, n_nodes_used):
        succ = ren - con + exp_
        return Simulation(list(uniq), ren, succ, exp_r, exp_s, n_exact, n_nodes_used,
                          float(np.max(tau)) if np.size(tau) else 0.0, due, con, exp_, add, exp_due, exp_c, exp_e,
                          exp_add, exp_n)

    if draws == 0:
        return result(0, 1)
    if add_m is not None and len(add_m):
        gi = np.searchsorted(uniq, add_g)
        mv = np.bincount(gi, np.maximum(add_v, 0.0), minlength=G)
        add[:] = np.maximum(exp_add[:, None] + np.sqrt(mv)[:, None] * rng.standard_normal((G, draws)), 0.0)
    if n == 0:
        return result(0, 1)

    tau_i = np.broadcast_to(np.asarray(tau, dtype=np.float64), (n,)).copy()
    slope, icpt, u, counts = _node_maps(bool(np.any(tau_i > 0)), maps, draws, n_nodes, seed)
    z = logit(p)
    c = np.zeros(n)
    for t in np.unique(tau_i):
        mt = tau_i == t
        c[mt] = _mean_preserving_offsets(z[mt], icpt + t * u, counts / counts.sum(), slope)

    def q_churn(idx, k):
        return expit(slope[k] * z[idx] + c[idx] + icpt[k] + tau_i[idx] * u[k])

    n_exact = n if n * draws <= exact_budget else int(min(n, exact_budget // draws))
    if n_exact < n:
        scale = np.sqrt(np.bincount(code, a * a, minlength=G))
        prio = a / np.maximum(scale[code], 1e-300)
        chained = pv >= 0
        prio[chained] = np.inf                          # chains are drawn exactly, from their start
        prio[pv[chained]] = np.inf
        order = np.argsort(-prio, kind="stable")
        ex, rest = np.sort(order[:n_exact]), np.sort(order[n_exact:])
    else:
        ex, rest = np.arange(n), np.arange(0)

    node_of_draw = np.repeat(np.arange(len(counts)), counts)
    if len(ex):
        ne = len(ex)
        pos = np.full(n, -1, dtype=np.int64)
        pos[ex] = np.arange(ne)
        chain = [pos[lvl[pos[lvl] >= 0]] for lvl in _chain_order(pv)]
        parent = np.where(pv[ex] >= 0, pos[np.maximum(pv[ex], 0)], -1)
        projected = np.flatnonzero(parent >= 0)
        gi = code[ex]
        rows = np.arange(ne)
        W = np.zeros((ne, 6 * G), dtype=np.float32)
        ae = a[ex]
        W[rows, gi] = ae
        W[rows, G + gi] = ae * cm[ex]
        W[rows, 2 * G + gi] = ae * em[ex]
        W[rows, 3 * G + gi] = ae * ae * cv[ex]
        W[rows, 4 * G + gi] = ae * ae * ev[ex]
        W[rows, 5 * G + gi] = ae * ae * cce[ex]
        any_split = bool(np.any(cm[ex] > 0) or np.any(em[ex] > 0))
        any_var = bool(np.any(cv[ex] > 0) or np.any(ev[ex] > 0))
        fixed_due = np.bincount(gi[parent < 0], ae[parent < 0], minlength=G)
        Wd = None
        if len(projected):
            Wd = np.zeros((ne, G), dtype=np.float32)
            Wd[projected, gi[projected]] = ae[projected]
        # churn iff a uniform 32-bit integer falls below p * 2^32 (exact to 2^-32); one threshold row per node
        T = np.empty((len(counts), ne), dtype=np.uint32)
        for k in range(len(counts)):
            T[k] = np.minimum(np.floor(q_churn(ex, k) * 2.0 ** 32), 2.0 ** 32 - 1)
        block = int(max(1, min(CHUNK_ELEMENTS // ne, draws)))
        R = np.empty((block, ne), dtype=np.float32)
        for d0 in range(0, draws, block):
            b = min(block, draws - d0)
            nodes = node_of_draw[d0:d0 + b]
            thr = T[nodes[0]] if nodes[0] == nodes[-1] else T[nodes]
            ur = rng.bit_generator.random_raw((b * ne + 1) // 2).view(np.uint32)[: b * ne].reshape(b, ne)
            Rb = R[:b]
            np.greater_equal(ur, thr, out=Rb, casting="unsafe")           # 1.0 = renewed
            reached = None
            if len(projected):
                reached = np.ones((b, ne), dtype=np.float32)
                for lvl in chain:                                        # a projected decision needs its parent
                    reached[:, lvl] = Rb[:, parent[lvl]]
                    Rb[:, lvl] *= reached[:, lvl]
            out = (Rb @ W).astype(np.float64)                            # (b, 6G)
            ren[:, d0:d0 + b] += out[:, :G].T
            due[:, d0:d0 + b] += fixed_due[:, None]
            if reached is not None:
                due[:, d0:d0 + b] += (reached @ Wd).astype(np.float64).T
            if any_split:
                mc, me = out[:, G:2 * G].T, out[:, 2 * G:3 * G].T
                if any_var:
                    vc, ve, cov = (np.maximum(out[:, 3 * G:4 * G], 0).T, np.maximum(out[:, 4 * G:5 * G], 0).T,
                                   out[:, 5 * G:6 * G].T)
                    z1, z2 = rng.standard_normal((2, G, b))
                    sc = np.sqrt(vc)
                    bce = np.where(sc > 0, cov / np.maximum(sc, 1e-300), 0.0)
                    re = np.sqrt(np.maximum(ve - bce ** 2, 0.0))
                    mc, me = mc + sc * z1, me + bce * z1 + re * z2
                con[:, d0:d0 + b] += np.maximum(mc, 0.0)
                exp_[:, d0:d0 + b] += np.maximum(me, 0.0)
    if len(rest):
        ar, gr = a[rest], code[rest]
        rr = reach[rest]
        col = 0
        due += np.bincount(gr, ar * rr, minlength=G)[:, None]
        for k, cnt in enumerate(counts):
            q = rr * (1.0 - q_churn(rest, k))                             # P(renew) at this node
            c1, e1 = cm[rest], em[rest]
            c2, e2 = cv[rest] + c1 * c1, ev[rest] + e1 * e1                 # E[c^2], E[e^2]
            mean = np.stack([np.bincount(gr, ar * q, minlength=G), np.bincount(gr, ar * q * c1, minlength=G),
                             np.bincount(gr, ar * q * e1, minlength=G)], axis=1)           # (G, 3)
            a2 = ar * ar

            def bc(x):
                return np.bincount(gr, a2 * x, minlength=G)
            cov = np.empty((G, 3, 3))
            cov[:, 0, 0] = bc(q * (1 - q))
            cov[:, 1, 1] = bc(q * c2 - (q * c1) ** 2)
            cov[:, 2, 2] = bc(q * e2 - (q * e1) ** 2)
            cov[:, 0, 1] = cov[:, 1, 0] = bc(c1 * q * (1 - q))
            cov[:, 0, 2] = cov[:, 2, 0] = bc(e1 * q * (1 - q))
            cov[:, 1, 2] = cov[:, 2, 1] = bc(q * cce[rest] + q * c1 * e1 - q * q * c1 * e1)
            w_, V = np.linalg.eigh(cov)                                   # PSD square root (robust to 0 rows)
            L = V * np.sqrt(np.maximum(w_, 0.0))[:, None, :]
            zz = rng.standard_normal((G, 3, cnt))
            draw = mean[:, :, None] + np.einsum("gij,gjd->gid", L, zz)
            cap = np.bincount(gr, ar * rr, minlength=G)
            ren[:, col:col + cnt] += np.clip(draw[:, 0], 0, cap[:, None])
            con[:, col:col + cnt] += np.maximum(draw[:, 1], 0)
            exp_[:, col:col + cnt] += np.maximum(draw[:, 2], 0)
            col += cnt
    return result(int(len(ex)), len(counts))


# ------------------------------------------------------------------------------------------------------
# interval calibration: implied shocks of past windows
# ------------------------------------------------------------------------------------------------------
def map_spread(arr, p_churn, maps) -> float:
    """The variance of the expected renewed ARR across the calibration ``maps`` ((K, 2) slope/intercept pairs
    on the churn logit), applied as :func:`simulate_renewals` applies them (mean-preserving): the spread of a
    window's total the Monte Carlo draws from the maps alone. 0 without maps or decisions."""
    a = np.asarray(arr, dtype=float)
    if maps is None or len(maps) == 0 or len(a) == 0:
        return 0.0
    m = np.asarray(maps, dtype=float).reshape(-1, 2)
    z = logit(np.clip(np.asarray(p_churn, dtype=float), 1e-9, 1 - 1e-9))
    c = _mean_preserving_offsets(z, m[:, 1], np.full(len(m), 1.0 / len(m)), m[:, 0])
    renewed = (1 - expit(m[:, :1] * z[None, :] + c[None, :] + m[:, 1:])) @ a
    return float(renewed.var())


def shock_evidence(arr, p_churn, actual_renewed: float, maps=None) -> tuple[float, float, float]:
    """What one past window says about the common shock: (error = actual - expected renewed ARR,
    V = the variance the Monte Carlo draws without the shock, D = d expected / d shock = sum a p (1 - p)).

    V is the Bernoulli variance sum a^2 p (1 - p), plus :func:`map_spread` when the method's draws apply
    calibration ``maps``, so that tau measures only the spread the draws do not already have. To first
    order a common logit shock of sd tau adds tau^2 D^2 to the variance, so the standardised error
    z(tau) = error / sqrt(V + tau^2 D^2) is N(0, 1) when tau is right."""
    a = np.asarray(arr, dtype=float)
    p = np.clip(np.asarray(p_churn, dtype=float), 1e-9, 1 - 1e-9)
    if len(a) == 0 or a.sum() <= 0 or not np.isfinite(actual_renewed):
        return float("nan"), float("nan"), float("nan")
    err = float(actual_renewed - (a * (1 - p)).sum())
    return err, float((a * a * p * (1 - p)).sum()) + map_spread(a, p, maps), float((a * p * (1 - p)).sum())


def estimate_tau(evidence, coverage: float = 0.8, tau_max: float = 3.0) -> float:
    """The smallest tau whose central ``coverage`` interval would have covered past windows as split-conformal
    prediction counts them: with n windows, the order statistic of the |z_j(tau)| at rank r = (n + 1) coverage,
    interpolated between the k-th and (k+1)-th smallest (k = floor(r)), equals the normal quantile (1.2816 for
    80 %). When past and future windows are exchangeable, the next window falls at or below the k-th smallest
    with probability k / (n + 1), and at or below the (k+1)-th with (k + 1) / (n + 1), so its coverage is within
    1 / (n + 1) of ``coverage`` on both sides: centred, where the conservative rank ceil(r) only bounds it
    from below and over-covers by up to 1 / (n + 1) (0.89 with 8 windows at 80 %). Exact for a fixed score and
    approximate here, as tau is fitted to the same windows. With fewer than coverage / (1 - coverage) windows
    (4 at 80 %) r > n: the largest |z| is used, and coverage is at most n / (n + 1).

    A calibration of the interval width on past errors only, with the shape of a common logit shock; bias of
    the past forecasts counts as spread. Windows: (error, V, D) triples (:func:`shock_evidence`). tau is also at
    least the moment estimate, the tau at which the mean squared standardised error is 1 (steadier than one
    order statistic when the windows are few); the larger of the two."""
    ev = np.asarray([e for e in evidence if all(np.isfinite(e)) and e[1] + e[2] > 0], dtype=float).reshape(-1, 3)
    if len(ev) == 0:
        return 0.0
    err, V, D = ev[:, 0], ev[:, 1], ev[:, 2]
    n = len(err)
    target = float(norm.ppf(0.5 + coverage / 2))
    rank = min(max((n + 1) * coverage, 1.0), float(n))          # 1-based, fractional
    k, frac = int(rank), rank - int(rank)

    def q(tau):  # the standardised errors' order statistic at `rank`, interpolated
        z = np.sort(np.abs(err) / np.sqrt(np.maximum(V + tau * tau * D * D, 1e-300)))
        return float(z[k - 1] + frac * (z[min(k, n - 1)] - z[k - 1]))

    def m(tau):  # mean squared standardised error: 1 when tau is right
        return float(np.mean(err * err / np.maximum(V + tau * tau * D * D, 1e-300)))

    return max(_solve_decreasing(q, target, tau_max), _solve_decreasing(m, 1.0, tau_max))


def estimate_tau_by_segment(evidence: dict, coverage: float = 0.8, tau_max: float = 3.0) -> dict:
    """tau per segment from that segment's own past windows (Mondrian split-conformal: :func:`estimate_tau` on
    each segment's windows alone), so that the coverage guarantee holds per segment, not only pooled.

    ``evidence``: {scope: [(error, V, D), ...]} (:func:`shock_evidence`), one scope per segment plus None
    for the portfolio's windows. Returns {"overall": tau from every window pooled, "segments":
    {segment: tau}}; a segment without windows is left out (it takes "overall", ``tau_per_decision``). The
    price of the per-segment guarantee is width when a segment's windows are few: with fewer than
    coverage / (1 - coverage) of them (4 at 80 %) its largest standardised error sets its tau."""
    pooled = [e for windows in evidence.values() for e in windows]
    return {"overall": estimate_tau(pooled, coverage, tau_max),
            "segments": {str(seg): estimate_tau(windows, coverage, tau_max)
                         for seg, windows in evidence.items() if seg is not None and len(windows)}}


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
PARTS = ("renewed_arr", "churned_arr", "contraction_arr", "expansion_arr", "successor_arr")


@dataclass
class MethodInput:
    """One method's view of the decisions to simulate: the pending decisions on the books (book order), then
    the projected ones. ``p_churn``; ``ratio_mean`` / ``ratio_var`` of successor ARR / ARR due given renewal;
    ``split`` = (E[c], Var[c], E[e], Var[e]) of contraction / expansion per unit of ARR due given renewal
    (None: from a normal ratio); ``maps``: calibration maps drawn as common shocks (None: none); ``tau``:
    common logit-shock sd, a float or one value per decision; ``addon``: (mean, var, group) of mid-term
    add-on ARR per account, or None."""
    p_churn: np.ndarray
    ratio_mean: np.ndarray
    ratio_var: np.ndarray
    split: tuple | None = None
    maps: np.ndarray | None = None
    tau: float | np.ndarray = 0.0
    addon: tuple | None = None


def _quantiles(x: np.ndarray) -> dict:
    q = np.quantile(x, [0.1, 0.5, 0.9]) if len(x) else [np.nan] * 3
    return {"p10": _f(q[0]), "p50": _f(q[1]), "p90": _f(q[2])}


def _ratio_q(num: np.ndarray, den) -> dict:
    den = np.broadcast_to(np.asarray(den, dtype=float), np.shape(num))
    if not len(num) or np.all(den <= 0):
        return {"p10": None, "p50": None, "p90": None}
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    r = r[np.isfinite(r)]
    return _quantiles(r) if len(r) else {"p10": None, "p50": None, "p90": None}


def known_outcomes(book: pd.DataFrame) -> dict:
    """Money of the decisions whose outcome is known as of as_of (renewed / churned so far)."""
    ren = (book["status"] == "renewed").to_numpy()
    ch = (book["status"] == "churned").to_numpy()
    a = book["arr"].to_numpy(float)
    s = book["succ_arr"].to_numpy(float)
    return {"due": float(a[ren | ch].sum()), "renewed": float(a[ren].sum()), "churned": float(a[ch].sum()),
            "successor": float(s[ren].sum()), "contraction": float(np.maximum(a - s, 0)[ren].sum()),
            "expansion": float(np.maximum(s - a, 0)[ren].sum())}


def _booked(book: pd.DataFrame) -> dict:
    """The renewed decisions whose successor starts after as_of (signed ahead; `renewal_book(booked=True)`)."""
    b = book[book["booked"].astype(bool)]
    return {"booked_count": int(len(b)), "booked_arr": _f(float(b["arr"].sum()))}


def summarise(book: pd.DataFrame, sim: Simulation | None, labels, mask=None) -> dict:
    """renewals_due / expected / intervals for a slice of the book (``mask``; on-the-books decisions) and the
    simulation's groups ``labels`` (its pending and projected decisions and mid-term add-ons). Every number
    is defined in docs/forecast.md; the identities

        churned = due - renewed,  successor = renewed - contraction + expansion at renewal,
        GRR = (due - churned - contraction) / due,  NRR = (due - churned - contraction + expansion) / due

    hold for the expected values and in every draw (expansion includes mid-term add-ons)."""
    mask = np.ones(len(book), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    b = book[mask]
    k = known_outcomes(b)
    pend = b[b["status"] == "pending"]
    pend_arr = float(pend["arr"].sum())
    if sim is not None:
        want = {str(x) for x in labels}
        idx = [i for i, g in enumerate(sim.groups) if str(g) in want]

        def e(name):
            v = getattr(sim, name)
            return float(v[idx].sum()) if idx and v is not None else 0.0
        E = {n: e(f"expected_{n}") for n in ("due", "renewed", "contraction", "expansion", "successor", "addon",
                                            "decisions")}
        D = sim.rows(labels)
    else:
        E = {n: 0.0 for n in ("due", "renewed", "contraction", "expansion", "successor", "addon", "decisions")}
        E["due"], E["decisions"] = pend_arr, float(len(pend))
        D = {n: np.zeros(1) for n in ("renewed", "contraction", "expansion", "successor", "addon")}
        D["due"] = np.full(1, pend_arr)
    due = k["due"] + E["due"]
    renewed = k["renewed"] + E["renewed"]
    contraction = k["contraction"] + E["contraction"]
    exp_renewal = k["expansion"] + E["expansion"]
    midterm = E["addon"]
    expansion = exp_renewal + midterm
    successor = k["successor"] + E["successor"]
    churned = due - renewed
    d_due = k["due"] + D["due"]
    d_ren = k["renewed"] + D["renewed"]
    d_con = k["contraction"] + D["contraction"]
    d_exp = k["expansion"] + D["expansion"] + D["addon"]
    d_succ = k["successor"] + D["successor"]

    def rate(x):
        return _f(x / due) if due > 0 else None
    return {
        "renewals_due": {"count": int(len(b)), "arr": _f(due), "pending_count": int(len(pend)),
                         "pending_arr": _f(pend_arr), "renewed_so_far_arr": _f(k["renewed"]),
                         "churned_so_far_arr": _f(k["churned"]), "on_books_arr": _f(float(b["arr"].sum())),
                         "projected_count": _f(max(E["decisions"] - len(pend), 0.0), 4),
                         "projected_arr": _f(max(E["due"] - pend_arr, 0.0)),
                         **_booked(b)},
        "expected": {"renewed_arr": _f(renewed), "churned_arr": _f(churned), "contraction_arr": _f(contraction),
                     "expansion_arr": _f(expansion), "expansion_at_renewal_arr": _f(exp_renewal),
                     "midterm_expansion_arr": _f(midterm), "successor_arr": _f(successor),
                     "arr_change": _f(successor - renewed), "renewal_rate": rate(renewed),
                     "grr": rate(renewed - contraction), "nrr": rate(renewed - contraction + expansion)},
        "intervals": {"renewed_arr": _quantiles(d_ren), "churned_arr": _quantiles(d_due - d_ren),
                      "contraction_arr": _quantiles(d_con), "expansion_arr": _quantiles(d_exp),
                      "successor_arr": _quantiles(d_succ), "grr": _ratio_q(d_ren - d_con, d_due),
                      "nrr": _ratio_q(d_ren - d_con + d_exp, d_due)},
    }


def method_results(book: pd.DataFrame, projected: pd.DataFrame | None, inputs: MethodInput, *, draws: int,
                   seed: int, exact_budget: int = EXACT_BUDGET, group_col: str = "group") -> dict:
    """Overall and per-group summaries of one method: ONE simulation of every pending and projected decision
    (and the add-ons), each group's draws a slice of the same joint draws."""
    pend = (book["status"] == "pending").to_numpy()
    proj = projected if projected is not None and len(projected) else None
    arr = book.loc[pend, "arr"].to_numpy(float)
    grp = book.loc[pend, group_col].astype(str).to_numpy()
    prev = np.full(int(pend.sum()), -1)
    if proj is not None:
        arr = np.concatenate([arr, proj["arr"].to_numpy(float)])
        grp = np.concatenate([grp, proj[group_col].astype(str).to_numpy()])
        prev = np.concatenate([prev, proj["prev"].to_numpy(int)])
    sim = None
    if len(arr) or inputs.addon is not None:
        sim = simulate_renewals(arr, inputs.p_churn, inputs.ratio_mean, inputs.ratio_var, grp, split=inputs.split,
                                prev=prev, maps=inputs.maps, addon=inputs.addon, draws=draws, seed=seed,
                                tau=inputs.tau, exact_budget=exact_budget)
    labels = sorted(set(book[group_col].astype(str)) | (set(sim.groups) if sim is not None else set()))
    overall = summarise(book, sim, labels)
    groups = {}
    for g in labels:
        mk = (book[group_col].astype(str) == g).to_numpy()
        groups[g] = summarise(book, sim, [g], mk)
    return {"overall": overall, "groups": groups,
            "simulation": {"n_exact": sim.n_exact if sim else 0, "n_nodes": sim.n_nodes if sim else 0}}


def flat_result(res: dict) -> dict:
    """A method's overall result as the flat dict used under "methods"."""
    e, i = res["expected"], res["intervals"]
    return {**{k: e[k] for k in ("renewed_arr", "churned_arr", "contraction_arr", "expansion_arr",
                                 "midterm_expansion_arr", "successor_arr", "grr", "nrr", "renewal_rate",
                                 "arr_change")},
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

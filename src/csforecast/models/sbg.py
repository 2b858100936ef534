"""The shifted-beta-geometric (sBG) model of contractual retention.

References
----------
* Fader, P. S. & Hardie, B. G. S. (2007). "How to project customer retention".
  Journal of Interactive Marketing 21(1), 76-90.  (model, likelihood, the
  "Regular" / "High End" example data and estimates)
* Fader, P. S. & Hardie, B. G. S. (2010). "Customer-base valuation in a
  contractual setting: the perils of ignoring heterogeneity". Marketing
  Science 29(1), 85-93.  (DEL / DERL and residual lifetime value)

Model
-----
Each customer has a constant per-period churn probability ``theta``; across
customers ``theta ~ Beta(alpha, beta)``.  With ``T`` the period in which the
customer churns (``T = 1, 2, ...``):

* ``P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)``
* ``S(t) = P(T > t) = B(alpha, beta + t) / B(alpha, beta)``, ``S(0) = 1``
* ``r(t) = S(t) / S(t-1) = (beta + t - 1) / (alpha + beta + t - 1)``

See ``docs/retention.md`` for the full derivations (including DERL).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, digamma, hyp2f1, polygamma
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

__all__ = ["ShiftedBetaGeometric"]

_LOG_BOUND = 15.0  # |log alpha|, |log beta| <= 15 during optimisation


# ---------------------------------------------------------------------------
# input handling
# ---------------------------------------------------------------------------
def _is_nested(x) -> bool:
    """True when ``x`` looks like several cohorts (a sequence of sequences / 2-D array)."""
    if hasattr(x, "ndim"):  # numpy array / pandas object
        return getattr(x, "ndim") == 2
    if isinstance(x, (str, bytes)):
        return False
    if isinstance(x, Sequence) and len(x) > 0:
        first = x[0]
        return not np.isscalar(first) and hasattr(first, "__len__")
    return False


def _as_cohort(seq, *, name: str, integer: bool = True) -> np.ndarray:
    a = np.asarray(seq, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of alive counts, got shape {a.shape}")
    # trailing NaNs are allowed (a row of a cohort "triangle"); interior NaNs are not
    if a.size and np.isnan(a).any():
        last = np.flatnonzero(~np.isnan(a))
        if last.size == 0:
            raise ValueError(f"{name}: all values are missing")
        a_trim = a[: last[-1] + 1]
        if np.isnan(a_trim).any():
            raise ValueError(f"{name}: missing values are only allowed at the end (unobserved periods)")
        a = a_trim
    if a.size == 0:
        raise ValueError(f"{name}: empty sequence")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: values must be finite")
    if (a < 0).any():
        raise ValueError(f"{name}: alive counts must be non-negative")
    if integer and not np.allclose(a, np.round(a), rtol=0, atol=1e-9):
        raise ValueError(
            f"{name}: alive counts must be integers (use fit(proportions, cohort_size=N) for a "
            "survival curve of proportions)"
        )
    if a[0] <= 0:
        raise ValueError(f"{name}: alive[0] (the cohort size) must be > 0")
    if (np.diff(a) > 1e-9 * a[0]).any():
        t = int(np.flatnonzero(np.diff(a) > 1e-9 * a[0])[0]) + 1
        raise ValueError(
            f"{name}: alive counts must be non-increasing (period {t}: {a[t - 1]:g} -> {a[t]:g})"
        )
    return np.round(a) if integer else a


# ---------------------------------------------------------------------------
# log-likelihood, written as  sum_k w_k * betaln(alpha + da_k, beta + db_k) - W * betaln(alpha, beta)
# ---------------------------------------------------------------------------
class _Terms:
    """Sufficient statistics of one or several cohorts for the sBG likelihood."""

    def __init__(self, cohorts: list[np.ndarray]):
        n_max = max(len(c) - 1 for c in cohorts)
        churn = np.zeros(n_max + 1)  # churn[t] = customers lost in period t (t >= 1)
        surv = np.zeros(n_max + 1)   # surv[n] = customers still alive at the end of an n-period record
        total = 0.0
        for c in cohorts:
            n = len(c) - 1
            if n == 0:  # a cohort observed only at period 0 carries no information
                continue
            churn[1: n + 1] += -np.diff(c)
            surv[n] += c[-1]
            total += c[0]
        t = np.arange(n_max + 1)
        da, db, w = [], [], []
        for k in range(1, n_max + 1):
            if churn[k] > 0:
                da.append(1.0), db.append(t[k] - 1.0), w.append(churn[k])
        for k in range(1, n_max + 1):
            if surv[k] > 0:
                da.append(0.0), db.append(float(t[k])), w.append(surv[k])
        self.da = np.asarray(da)
        self.db = np.asarray(db)
        self.w = np.asarray(w)
        self.total = total
        self.n_churned = float(churn.sum())
        self.n_alive_end = float(surv.sum())

    def loglik(self, a: float, b: float) -> float:
        return float(np.sum(self.w * betaln(a + self.da, b + self.db)) - self.total * betaln(a, b))

    def grad(self, a: float, b: float) -> np.ndarray:
        ab = digamma(a + b + self.da + self.db)
        ga = np.sum(self.w * (digamma(a + self.da) - ab)) - self.total * (digamma(a) - digamma(a + b))
        gb = np.sum(self.w * (digamma(b + self.db) - ab)) - self.total * (digamma(b) - digamma(a + b))
        return np.array([ga, gb])

    def hess(self, a: float, b: float) -> np.ndarray:
        t1 = lambda x: polygamma(1, x)  # noqa: E731
        ab = t1(a + b + self.da + self.db)
        haa = np.sum(self.w * (t1(a + self.da) - ab)) - self.total * (t1(a) - t1(a + b))
        hbb = np.sum(self.w * (t1(b + self.db) - ab)) - self.total * (t1(b) - t1(a + b))
        hab = np.sum(self.w * (-ab)) - self.total * (-t1(a + b))
        return np.array([[haa, hab], [hab, hbb]])


class _DecisionTerms:
    """Individual renewal decisions (period t, churned c, weight w) for the sBG likelihood, conditional on
    survival to t - 1: sum_i w_i [betaln(alpha + c_i, beta + t_i - 1 + (1 - c_i)) - betaln(alpha, beta + t_i - 1)]."""

    def __init__(self, t: np.ndarray, c: np.ndarray, w: np.ndarray):
        self.da = c
        self.db = t - 1.0 + (1.0 - c)
        self.eb = t - 1.0
        self.w = w
        self.total = float(w.sum())
        self.n_churned = float((w * c).sum())

    def loglik(self, a: float, b: float) -> float:
        return float(np.sum(self.w * (betaln(a + self.da, b + self.db) - betaln(a, b + self.eb))))

    def grad(self, a: float, b: float) -> np.ndarray:
        num = digamma(a + b + self.da + self.db)
        den = digamma(a + b + self.eb)
        ga = np.sum(self.w * (digamma(a + self.da) - num - digamma(a) + den))
        gb = np.sum(self.w * (digamma(b + self.db) - num - digamma(b + self.eb) + den))
        return np.array([ga, gb])

    def hess(self, a: float, b: float) -> np.ndarray:
        t1 = lambda x: polygamma(1, x)  # noqa: E731
        num = t1(a + b + self.da + self.db)
        den = t1(a + b + self.eb)
        haa = np.sum(self.w * (t1(a + self.da) - num - t1(a) + den))
        hbb = np.sum(self.w * (t1(b + self.db) - num - t1(b + self.eb) + den))
        hab = np.sum(self.w * (-num + den))
        return np.array([[haa, hab], [hab, hbb]])


# ---------------------------------------------------------------------------
# 2F1(1, b; c; z) for 0 < b < c, 0 < z < 1 -- the DERL / DEL series
# ---------------------------------------------------------------------------
_HYP2F1_MAX_C = 50.0  # scipy's hyp2f1 is accurate (< 1e-12 rel.) below this; NaN for c ~ 1e3


def _series_2f1_1(b: float, c: float, z: float, rtol: float = 1e-16, chunk: int = 4096,
                  max_terms: int = 50_000_000) -> float:
    """sum_k (b)_k / (c)_k z^k by direct summation (term ratios are < z, so the tail after a term
    T is at most T z / (1 - z))."""
    total, log_t, k0 = 0.0, 0.0, 0
    log_z = math.log(z)
    while k0 < max_terms:
        k = k0 + np.arange(chunk)
        logs = log_t + np.concatenate([[0.0], np.cumsum(np.log((b + k[:-1]) / (c + k[:-1])) + log_z)])
        terms = np.exp(logs)
        total += float(terms.sum())
        log_t = logs[-1] + math.log((b + k[-1]) / (c + k[-1])) + log_z
        k0 += chunk
        if math.exp(log_t) / (1.0 - z) < rtol * total:
            return total
    raise RuntimeError("hypergeometric series did not converge (discount rate too small?)")


def _hyp2f1_1(b, c, z) -> np.ndarray:
    """Vectorised 2F1(1, b; c; z): scipy's hyp2f1 for moderate c, direct series otherwise."""
    b, c, z = np.broadcast_arrays(np.asarray(b, float), np.asarray(c, float), np.asarray(z, float))
    out = np.asarray(hyp2f1(1.0, b, c, z), dtype=float).copy()
    redo = ~np.isfinite(out) | (c > _HYP2F1_MAX_C)
    for idx in zip(*np.nonzero(redo)) if out.ndim else ([()] if redo else []):
        out[idx] = _series_2f1_1(float(b[idx]), float(c[idx]), float(z[idx]))
    return out


# ---------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------
class ShiftedBetaGeometric(BaseEstimator):
    """Shifted-beta-geometric model of cohort retention (Fader & Hardie 2007).

    Parameters
    ----------
    alpha_init, beta_init : float
        Starting values for the maximum-likelihood search (on the log scale the
        search starts at ``log(alpha_init), log(beta_init)``; a few other
        starting points are also tried and the best optimum is kept).
    tol : float
        Gradient tolerance of the optimiser (on the log-parameter scale).
    max_iter : int
        Maximum number of optimiser iterations per start.

    Attributes (after :meth:`fit`)
    -------------------------------
    alpha_, beta_ : float
        Maximum-likelihood estimates.
    loglik_ : float
        Maximised log-likelihood, ``sum_t n_t log P(T=t) + sum_c s_c log S(n_c)``
        (no multinomial constant; this is the "LL" of Fader & Hardie's spreadsheet).
    n_periods_ : int
        Number of observed periods (the longest cohort if several).
    n_cohorts_ : int
    cohort_sizes_ : ndarray
        ``alive[0]`` of each fitted cohort.
    cov_ : ndarray (2, 2)
        Asymptotic covariance of ``(alpha_, beta_)`` from the observed information.
    stderr_ : ndarray (2,)
        ``sqrt(diag(cov_))``.
    converged_ : bool
    """

    def __init__(self, *, alpha_init: float = 1.0, beta_init: float = 1.0, tol: float = 1e-9,
                 max_iter: int = 2000):
        self.alpha_init = alpha_init
        self.beta_init = beta_init
        self.tol = tol
        self.max_iter = max_iter

    # -- scikit-learn protocol ----------------------------------------------
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "alpha_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False       # fit takes alive counts, not (X, y)
        return tags

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:  # noqa: N803 - BaseEstimator's signature
        if hasattr(self, "alpha_"):
            return f"ShiftedBetaGeometric(alpha_={self.alpha_:.4g}, beta_={self.beta_:.4g})"
        return super().__repr__(N_CHAR_MAX)

    # -- fitting -------------------------------------------------------------
    def fit(self, alive, cohort_size: float | None = None) -> "ShiftedBetaGeometric":
        """Fit by maximum likelihood.

        Parameters
        ----------
        alive :
            * one cohort: counts still active at periods ``0..n`` (``alive[0]`` is
              the cohort size), e.g. ``[1000, 869, 743, ...]``;
            * several cohorts: a list of such sequences, possibly of different
              lengths (a "triangle" of cohorts by start period), or a 2-D array /
              DataFrame with one row per cohort and trailing NaNs for periods not
              yet observed.  The cohorts share ``alpha`` and ``beta`` (joint ML).
            * with ``cohort_size``: survival *proportions* at periods ``0..n``
              (``alive[0]`` must be 1); the counts used are ``cohort_size * p``
              (not rounded).  With several cohorts ``cohort_size`` may be a
              sequence, one size per cohort.
        cohort_size : float or sequence, optional
            See above.
        """
        cohorts = self._parse(alive, cohort_size)
        if all(len(c) < 2 for c in cohorts):
            raise ValueError("need at least one observed period after period 0 to fit the model")
        terms = _Terms(cohorts)
        self._maximise(terms)
        self.n_periods_ = max(len(c) - 1 for c in cohorts)
        self.n_cohorts_ = len(cohorts)
        self.cohort_sizes_ = np.array([c[0] for c in cohorts])
        return self

    def fit_decisions(self, period, churned, sample_weight=None) -> "ShiftedBetaGeometric":
        """Fit by maximum likelihood on individual renewal decisions instead of cohort counts.

        ``period[i]`` is the renewal number of decision ``i`` (1 = the first renewal) and ``churned[i]`` whether
        the customer left there. Each decision contributes the sBG conditional probability given survival to
        ``period - 1``: churn ``alpha / (alpha + beta + t - 1)``, renewal ``r(t)``. Records that start late
        (customers whose earlier renewals predate the data) are handled exactly (left truncation), which
        cohort counts cannot express. ``sample_weight`` weighs decisions (default 1). ``n_cohorts_`` is 0 and
        ``n_periods_`` the largest period seen.
        """
        t = self._periods(np.ravel(period), 1, "period")
        c = np.asarray(churned, dtype=float).ravel()
        if len(c) != len(t) or not np.isin(c, (0.0, 1.0)).all():
            raise ValueError("churned must hold one 0/1 value per period")
        w = np.ones(len(t)) if sample_weight is None else np.asarray(sample_weight, dtype=float).ravel()
        if len(t) == 0:
            raise ValueError("no renewal decisions to fit")
        self._maximise(_DecisionTerms(t, c, w))
        self.n_periods_ = int(t.max())
        self.n_cohorts_ = 0
        self.cohort_sizes_ = np.array([])
        return self

    def _maximise(self, terms) -> None:
        """Maximise ``terms``' log-likelihood over (alpha, beta) and set the fitted attributes."""
        if terms.n_churned == 0:
            raise ValueError("no customer churned in the data: the sBG likelihood has no maximum "
                             "(beta -> infinity)")

        def fun(x):
            a, b = np.exp(x)
            ll = terms.loglik(a, b)
            g = terms.grad(a, b) * np.array([a, b])  # chain rule for log-parameters
            scale = terms.total
            return -ll / scale, -g / scale

        starts = [(math.log(self.alpha_init), math.log(self.beta_init)), (0.0, 0.0), (-1.0, 1.0),
                  (1.0, 2.0), (2.0, 4.0)]
        best = None
        for x0 in starts:
            with np.errstate(all="ignore"):
                res = minimize(fun, np.asarray(x0, float), jac=True, method="L-BFGS-B",
                               bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 2,
                               options={"maxiter": self.max_iter, "ftol": 1e-15, "gtol": self.tol})
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
        if best is None:
            raise RuntimeError("sBG optimisation failed from every starting point")

        # polish with a few Newton steps on the log scale (analytic Hessian)
        x = best.x.copy()
        for _ in range(20):
            a, b = np.exp(x)
            g = terms.grad(a, b) * np.array([a, b])
            h = terms.hess(a, b) * np.outer([a, b], [a, b]) + np.diag(g)
            try:
                step = np.linalg.solve(h, g)
            except np.linalg.LinAlgError:
                break
            x_new = np.clip(x - step, -_LOG_BOUND, _LOG_BOUND)
            if terms.loglik(*np.exp(x_new)) < terms.loglik(a, b) - 1e-12:
                break
            x = x_new
            if np.max(np.abs(step)) < 1e-13:
                break

        a, b = (float(v) for v in np.exp(x))
        at_bound = bool(np.any(np.abs(x) >= _LOG_BOUND - 1e-6))
        if at_bound:
            warnings.warn("sBG estimate at the boundary of the search region "
                          f"(alpha={a:.3g}, beta={b:.3g}); the data may be nearly homogeneous",
                          RuntimeWarning, stacklevel=2)
        self.alpha_, self.beta_ = a, b
        self.loglik_ = terms.loglik(a, b)
        g_final = terms.grad(a, b) * np.array([a, b]) / terms.total
        self.converged_ = bool(np.all(np.isfinite(g_final)) and np.max(np.abs(g_final)) < 1e-6
                               and not at_bound)
        try:
            self.cov_ = np.linalg.inv(-terms.hess(a, b))
        except np.linalg.LinAlgError:
            self.cov_ = np.full((2, 2), np.nan)
        self.stderr_ = np.sqrt(np.clip(np.diag(self.cov_), 0, None))

    @staticmethod
    def _parse(alive, cohort_size) -> list[np.ndarray]:
        if hasattr(alive, "to_numpy") and getattr(alive, "ndim", 1) == 2:  # DataFrame triangle
            alive = alive.to_numpy(dtype=float)
        nested = _is_nested(alive)
        raw = list(alive) if nested else [alive]
        if len(raw) == 0:
            raise ValueError("no cohorts given")
        if cohort_size is None:
            return [_as_cohort(c, name=f"cohort {i}" if nested else "alive") for i, c in enumerate(raw)]
        sizes = np.broadcast_to(np.asarray(cohort_size, dtype=float), (len(raw),))
        out = []
        for i, (c, n) in enumerate(zip(raw, sizes)):
            name = f"cohort {i}" if nested else "alive"
            if not np.isfinite(n) or n <= 0:
                raise ValueError(f"{name}: cohort_size must be a positive number")
            p = _as_cohort(c, name=name, integer=False)
            if p.max() > 1 + 1e-9 or abs(p[0] - 1.0) > 1e-9:
                raise ValueError(f"{name}: with cohort_size, give survival proportions starting at "
                                 f"S(0) = 1 (got first value {p[0]:g})")
            out.append(p * n)
        return out

    # -- model quantities ------------------------------------------------------
    def _check_fitted(self):
        check_is_fitted(self)
        return self.alpha_, self.beta_

    @staticmethod
    def _periods(t, minimum: int, what: str):
        arr = np.asarray(t, dtype=float)
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError(f"{what}: periods must be integers")
        if (arr < minimum).any():
            raise ValueError(f"{what}: periods must be >= {minimum}")
        return arr

    @staticmethod
    def _out(x, *inputs):
        """A float when every input is a scalar, else an ndarray."""
        if all(np.ndim(v) == 0 for v in inputs):
            return float(np.asarray(x).reshape(()))
        return np.asarray(x, dtype=float)

    def survival(self, t):
        """``S(t) = P(T > t) = B(alpha, beta + t) / B(alpha, beta)`` for integer ``t >= 0``."""
        a, b = self._check_fitted()
        tt = self._periods(t, 0, "survival")
        return self._out(np.exp(betaln(a, b + tt) - betaln(a, b)), t)

    def retention_rate(self, t):
        """``r(t) = S(t)/S(t-1) = (beta + t - 1) / (alpha + beta + t - 1)`` for integer ``t >= 1``."""
        a, b = self._check_fitted()
        tt = self._periods(t, 1, "retention_rate")
        return self._out((b + tt - 1) / (a + b + tt - 1), t)

    def churn_probability(self, t):
        """``P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)`` for integer ``t >= 1``."""
        a, b = self._check_fitted()
        tt = self._periods(t, 1, "churn_probability")
        return self._out(np.exp(betaln(a + 1, b + tt - 1) - betaln(a, b)), t)

    def project(self, n_periods: int, cohort_size: float | None = None) -> np.ndarray:
        """Expected number still active at periods ``0..n_periods`` (length ``n_periods + 1``).

        ``cohort_size`` defaults to ``alive[0]`` of the fitted cohort (required when
        the model was fitted on several cohorts).
        """
        self._check_fitted()
        if int(n_periods) != n_periods or n_periods < 0:
            raise ValueError("n_periods must be a non-negative integer")
        if cohort_size is None:
            if self.n_cohorts_ != 1:
                raise ValueError("fitted on several cohorts: pass cohort_size explicitly")
            cohort_size = float(self.cohort_sizes_[0])
        return cohort_size * self.survival(np.arange(int(n_periods) + 1))

    # -- lifetime value (Fader & Hardie 2010) --------------------------------
    @staticmethod
    def _check_discount(discount):
        d = np.asarray(discount, dtype=float)
        if not np.isfinite(d).all() or (d <= 0).any():
            raise ValueError("discount must be > 0 (e.g. 0.10 for 10% per period)")
        return d

    def derl(self, discount, renewals_made=0):
        """Discounted expected residual lifetime (Fader & Hardie 2010).

        For a customer who has made ``renewals_made = n`` renewals, standing at
        the end of period ``n + 1`` just before the next renewal decision
        (F&H 2010 call this customer "one who has made n-1 renewals" with their
        index shifted by one)::

            DERL(d | alpha, beta, n) = sum_{t>=0} S(n+1+t)/S(n) / (1+d)^t
                = (beta+n)/(alpha+beta+n) * 2F1(1, beta+n+1; alpha+beta+n+1; 1/(1+d))

        The payment for the current period (already received) is *not*
        included; the first term is the next renewal payment, undiscounted.
        Vectorised over ``discount`` and ``renewals_made``.  ``2F1`` is evaluated with
        ``scipy.special.hyp2f1`` when its third argument is <= 50 and by direct summation of
        its (geometrically convergent) series otherwise, where scipy's routine loses accuracy.
        """
        a, b = self._check_fitted()
        d = self._check_discount(discount)
        n = self._periods(renewals_made, 0, "renewals_made")
        val = (b + n) / (a + b + n) * _hyp2f1_1(b + n + 1.0, a + b + n + 1.0, 1.0 / (1.0 + d))
        return self._out(val, discount, renewals_made)

    def discounted_expected_lifetime(self, discount):
        """DEL for a customer about to be acquired (payments at the start of each period,
        first payment included and undiscounted)::

            DEL(d | alpha, beta) = sum_{t>=0} S(t) / (1+d)^t = 2F1(1, beta; alpha+beta; 1/(1+d))
                                 = 1 + DERL(d | alpha, beta, 0) / (1+d)
        """
        a, b = self._check_fitted()
        d = self._check_discount(discount)
        return self._out(_hyp2f1_1(b, a + b, 1.0 / (1.0 + d)), discount)

    def clv(self, margin, discount, renewals_made=0):
        """Expected residual lifetime value ``margin * DERL(discount, renewals_made)``.

        F&H 2010's E(RLV) of an existing customer who has made ``renewals_made``
        renewals: evaluated just before the next renewal; excludes the payment
        for the current period (already received); the next payment is undiscounted.
        """
        return self._out(np.asarray(margin, dtype=float) * self.derl(discount, renewals_made),
                         margin, discount, renewals_made)

    def dlv(self, margin, discount):
        """Expected discounted lifetime value of a *new* customer: ``margin * DEL(discount)``.

        Includes the first payment (made at acquisition, undiscounted).
        """
        return self._out(np.asarray(margin, dtype=float) * self.discounted_expected_lifetime(discount),
                         margin, discount)

"""Customer health score: documented 0–100 component scores, weighted by a logistic regression of churn at
renewal, mapped to a 0–100 score (higher = healthier) with exact Shapley contributions per component.

Pipeline of one account row (a point-in-time snapshot, see csforecast.features.snapshot):

1. raw measures (seat utilisation, key-feature breadth, days since the last executive meeting, ...);
2. each measure -> a 0–100 measure score by a fixed, documented transform (a percentile rank against the
   training rows, a U-shape around a learned optimum, or a logistic/linear squash with fixed constants);
   higher is always healthier, and a missing measure is imputed to the neutral 50 (the training median);
3. component score = a weighted mean of its measure scores; the weights are learned on the training rows by a
   logistic regression of churn on all measure scores, keeping only measures with the plausible sign
   (healthier measure, less churn) and normalising their weights to sum to 1 within each component (equal
   weights when none of a component's measures qualifies);
4. eta = b0 + sum_k w_k * c_k / 10: a statsmodels Logit of churn at renewal on the component scores
   (coefficients are log-odds of churn per 10 component points; cluster-robust by account);
5. health score S(eta) = 100 * sigmoid(-(eta - eta_ref)) where eta_ref = eta at the training-mean component
   vector, so the typical account scores exactly 50 and -10 points ~ the odds of churn x1.5 near 50;
6. contributions: the exact Shapley decomposition of S over the components with the training-mean component
   vector as the baseline: they sum to S - 50 exactly (up to float rounding).

docs/health.md documents every transform and constant.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from csforecast.features.catalogue import info
from csforecast.models.tabular import dataframe_input_tags

__all__ = ["HealthScoreModel", "MEASURES", "COMPONENTS", "TEXTBOOK", "textbook_score", "textbook_bands",
           "band_of", "shapley_contributions", "health_from_eta", "exact_shapley"]

NEUTRAL = 50.0          # imputed measure score when a measure is missing
WEIGHTINGS = ("learned", "equal")
COEF_SCALE = 10.0       # coefficients are per 10 component points

# component -> (title, pillar, lever). Value/ROI and Sentiment are scored only when their data exists.
COMPONENTS: dict[str, tuple[str, str, str]] = {
    "deployment": ("Deployment", "Outcomes", info("seat_utilisation").lever),
    "adoption": ("Adoption", "Outcomes", info("key_feature_breadth").lever),
    "engagement": ("Engagement", "Outcomes", info("days_since_exec_meeting").lever),
    "value": ("Value/ROI", "Outcomes", info("value_realised").lever),
    "nps": ("NPS", "Experience", info("account_nps_365d").lever),
    "support": ("Support", "Experience", info("csat_latest").lever),
    "sentiment": ("Sentiment", "Experience", info("csm_sentiment").lever),
}
CHAMPION_LEVER = info("days_since_champion_left").lever


def _num(df: pd.DataFrame | Mapping[str, np.ndarray], col: str) -> np.ndarray:
    """Column ``col`` as floats (non-numbers -> NaN); a float array (a `_float_columns` column) as it is.
    KeyError when ``df`` has no such column."""
    v = df[col]
    if isinstance(v, np.ndarray) and v.dtype == np.float64:
        return v
    return pd.to_numeric(v, errors="coerce").to_numpy(dtype=float)


def _float_columns(X: pd.DataFrame | Mapping[str, np.ndarray], names) -> dict[str, np.ndarray]:
    """The columns ``names`` of ``X`` that it has, each converted to floats once (non-numbers -> NaN), so the
    measures read plain arrays rather than indexing and converting a DataFrame column each."""
    return {c: _num(X, c) for c in names if c in X}


def _n_rows(X: pd.DataFrame | Mapping[str, np.ndarray]) -> int:
    if isinstance(X, pd.DataFrame):
        return len(X)
    return len(next(iter(X.values()))) if len(X) else 0


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / b, np.nan)


# --- raw measures -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Col:
    """Raw measure = a snapshot column times a constant (picklable, unlike a lambda)."""
    col: str
    scale: float = 1.0

    def __call__(self, df: pd.DataFrame) -> np.ndarray:
        return _num(df, self.col) * self.scale


@dataclass(frozen=True)
class _Per:
    """Raw measure = numerator / denominator column (missing when the denominator is not positive)."""
    num: str
    den: str

    def __call__(self, df: pd.DataFrame) -> np.ndarray:
        return _ratio(_num(df, self.num), _num(df, self.den))


def _exec_recency(d: np.ndarray) -> np.ndarray:
    """Days since the last executive meeting -> 0–100: logistic, 50 at 120 days, scale 30 days
    (30 d -> 95, 90 d -> 73, 180 d -> 12); none in the two-year look-back -> 0."""
    return np.where(np.isnan(d), 0.0, 100.0 * expit(-(d - 120.0) / 30.0))


def _champion_stability(d: np.ndarray) -> np.ndarray:
    """Days since the champion left -> 0–100: linear, 0 on the day, 100 after a year; no departure in the
    two-year look-back -> 100."""
    return np.where(np.isnan(d), 100.0, 100.0 * np.clip(d, 0, 365) / 365.0)


@dataclass(frozen=True)
class Measure:
    """One raw measure of a component and its transform to 0–100 (higher = healthier).

    transform: "rank" (percentile rank vs training rows), "rank_desc" (100 - that), "u_rank" (U-shape of the
    percentile rank around the rank r* with the lowest training churn: 100 * (1 - |r - r*| / max(r*, 1 - r*))),
    or "fixed" (the documented function `fixed`). Missing raw values score NEUTRAL unless the fixed function
    gives them a meaning (e.g. "no executive meeting in two years" is the worst value, not missing)."""
    name: str
    component: str
    requires: tuple[str, ...]
    raw: Callable[[pd.DataFrame], np.ndarray]
    transform: str
    doc: str
    fixed: Callable[[np.ndarray], np.ndarray] | None = None


MEASURES: tuple[Measure, ...] = (
    Measure("seat_utilisation_30d", "deployment", ("seat_utilisation",),
            _Col("seat_utilisation"), "rank",
            "mean daily active users over 30 days / seats"),
    Measure("seat_utilisation_90d", "deployment", ("seat_utilisation_90d",),
            _Col("seat_utilisation_90d"), "rank",
            "mean daily active users over 90 days / seats"),
    Measure("seat_utilisation_12m", "deployment", ("seat_utilisation_12m",),
            _Col("seat_utilisation_12m"), "rank",
            "mean daily active users over the last 12 complete months / seats"),
    Measure("seat_utilisation_ewm6m", "deployment", ("seat_utilisation_ewm6m",),
            _Col("seat_utilisation_ewm6m"), "rank",
            "seat utilisation over the account's history, weighted with a 6-month half-life"),
    Measure("key_feature_breadth", "adoption", ("key_feature_breadth",),
            _Col("key_feature_breadth"), "rank",
            "share of the 10 key features used weekly (30 days)"),
    Measure("key_feature_breadth_90d", "adoption", ("key_features_used_90d",),
            _Col("key_features_used_90d", 7 / 10.0), "rank",
            "share of the 10 key features used weekly (90 days)"),
    Measure("key_feature_breadth_12m", "adoption", ("key_features_used_12m",),
            _Col("key_features_used_12m", 7 / 10.0), "rank",
            "share of the 10 key features used weekly (last 12 complete months)"),
    Measure("key_feature_breadth_ewm6m", "adoption", ("key_features_used_ewm6m",),
            _Col("key_features_used_ewm6m", 7 / 10.0), "rank",
            "share of the 10 key features used weekly over the account's history, 6-month half-life"),
    Measure("active_user_trend", "adoption", ("active_users_30d", "active_users_90d"),
            _Per("active_users_30d", "active_users_90d"), "rank",
            "active users, 30-day mean / 90-day mean (depth trend); no users in 90 days -> missing"),
    Measure("csm_touches", "engagement", ("touches_90d",),
            _Col("touches_90d"), "rank", "CSM touches in 90 days"),
    Measure("exec_recency", "engagement", ("days_since_exec_meeting",),
            _Col("days_since_exec_meeting"), "fixed",
            "days since the last executive meeting: 100*sigmoid(-(d-120)/30); none in 2 years -> 0",
            _exec_recency),
    Measure("stakeholder_coverage", "engagement", ("respondent_roles_365d",),
            _Col("respondent_roles_365d"), "rank",
            "distinct stakeholder roles heard from in 12 months"),
    Measure("champion_stability", "engagement", ("days_since_champion_left",),
            _Col("days_since_champion_left"), "fixed",
            "days since the champion left: 100*min(d,365)/365; no departure in 2 years -> 100",
            _champion_stability),
    Measure("account_nps", "nps", ("account_nps_365d",),
            _Col("account_nps_365d"), "rank",
            "account NPS over 12 months (% promoters - % detractors)"),
    Measure("latest_nps", "nps", ("nps_latest",),
            _Col("nps_latest"), "rank", "latest NPS response (0–10)"),
    Measure("csat_survey", "support", ("csat_latest",),
            _Col("csat_latest"), "rank", "latest CSAT survey (1–5)"),
    Measure("ticket_csat", "support", ("ticket_csat_180d",),
            _Col("ticket_csat_180d"), "rank", "mean ticket CSAT over 180 days"),
    Measure("p1_tickets", "support", ("tickets_p1_90d", "seats"),
            _Per("tickets_p1_90d", "seats"), "rank_desc",
            "P1 tickets in 90 days per seat"),
    Measure("resolution_time", "support", ("mean_resolution_days_180d",),
            _Col("mean_resolution_days_180d"), "rank_desc",
            "mean resolution time of tickets closed in 180 days"),
    Measure("ticket_load", "support", ("tickets_90d", "seats"),
            _Per("tickets_90d", "seats"), "u_rank",
            "tickets in 90 days per seat, U-shaped around the least risky load"),
    Measure("open_ticket_load", "support", ("open_tickets", "seats"),
            _Per("open_tickets", "seats"), "rank_desc",
            "open tickets per seat"),
    # scored only when the source has them (the optional success_plans and csm_sentiment tables)
    Measure("value_realised", "value", ("value_realised",),
            _Col("value_realised"), "rank", "share of success-plan goals met at the latest review (12 months)"),
    Measure("roi", "value", ("roi_latest",),
            _Col("roi_latest"), "rank", "documented ROI multiple at the latest review (12 months)"),
    Measure("csm_sentiment", "sentiment", ("csm_sentiment",),
            _Col("csm_sentiment"), "rank", "the CSM's latest sentiment, 1-5 (red 1, yellow 3, green 5; 12 months)"),
)


class _Rank:
    """Percentile rank (mid-rank for ties) against the training values, 0–100; between training values it is
    interpolated linearly, outside their range it takes the end values."""

    def __init__(self, x: np.ndarray):
        x = np.sort(x[~np.isnan(x)])
        if len(x) == 0:
            self.v, self.p = np.array([0.0]), np.array([NEUTRAL])
            return
        v, first = np.unique(x, return_index=True)
        last = np.append(first[1:], len(x))  # exclusive
        self.v = v
        self.p = 100.0 * (first + 0.5 * (last - first)) / len(x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.interp(x, self.v, self.p)
        return np.where(np.isnan(x), np.nan, out)


# --- bands -----------------------------------------------------------------------------------------------

def band_of(score, red: float = 40.0, yellow: float = 70.0):
    """'red' below `red`, 'yellow' below `yellow`, else 'green' (array or scalar)."""
    s = np.asarray(score, dtype=float)
    out = np.where(s < red, "red", np.where(s < yellow, "yellow", "green")).astype(object)
    out[np.isnan(s)] = None
    return out if out.ndim else out.item()


# --- the textbook scorecard -----------------------------------------------------------------------------

# Fixed textbook-like cut-offs (green at or above the first number, yellow at or above the second, else red).
TEXTBOOK = {
    "deployment": ("seat_utilisation", 0.60, 0.40),
    "adoption": ("key_feature_breadth", 0.50, 0.25),
    "engagement": ("days_since_exec_meeting", 90, 180),   # days: green <= 90, yellow <= 180, else / none red
    "nps": ("account_nps_365d", 60, 30),
    "csat": ("csat_latest", 4, 3),
}
_POINTS = {"green": 100.0, "yellow": 50.0, "red": 0.0}


def textbook_bands(df: pd.DataFrame) -> pd.DataFrame:
    """The textbook green/yellow/red per area (None where the data is missing)."""
    out = {}
    for area, (col, g, y) in TEXTBOOK.items():
        if col not in df:
            out[area] = [None] * len(df)
            continue
        v = _num(df, col)
        if area == "engagement":
            b = np.where(v <= g, "green", np.where(v <= y, "yellow", "red")).astype(object)
            b[np.isnan(v)] = "red"  # no executive meeting in the two-year look-back
            if "days_since_champion_left" in df:
                ch = _num(df, "days_since_champion_left")
                b[ch <= 90] = "red"
        else:
            if area == "csat" and "ticket_csat_180d" in df:
                v = np.where(np.isnan(v), _num(df, "ticket_csat_180d"), v)
            b = np.where(v >= g, "green", np.where(v >= y, "yellow", "red")).astype(object)
            b[np.isnan(v)] = None
        out[area] = b
    return pd.DataFrame(out, index=df.index)


def textbook_score(df: pd.DataFrame) -> np.ndarray:
    """Textbook bands -> 100/50/0; Outcomes = mean(deployment, adoption, engagement), Experience = mean of the
    available NPS and CSAT bands (50 when neither exists); overall = mean(Outcomes, Experience)."""
    b = textbook_bands(df).apply(lambda s: s.map(lambda x: _POINTS.get(x, np.nan)))
    outcomes = b[["deployment", "adoption", "engagement"]].mean(axis=1)
    experience = b[["nps", "csat"]].mean(axis=1).fillna(NEUTRAL)
    return ((outcomes.fillna(NEUTRAL) + experience) / 2).to_numpy(dtype=float)


# --- score map and exact Shapley ------------------------------------------------------------------------

def health_from_eta(eta, eta_ref: float) -> np.ndarray:
    """S(eta) = 100 * sigmoid(-(eta - eta_ref)): monotone decreasing in the churn log-odds, 50 at eta_ref."""
    return 100.0 * expit(-(np.asarray(eta, dtype=float) - eta_ref))


def exact_shapley(deltas: np.ndarray, value: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Exact Shapley values of the game v(T) = value(sum_{k in T} deltas[:, k]) for each row.

    deltas: (n, K) additive effects on the link; value maps a link shift (n,) to the payoff. Enumerates all
    2^K coalitions (K <= 12). sum_k phi_k = value(sum_k deltas_k) - value(0) exactly (efficiency)."""
    n, K = deltas.shape
    if K == 0:
        return np.zeros((n, 0))
    if K > 12:
        raise ValueError("exact Shapley enumerates 2^K coalitions; K must be <= 12")
    masks = (np.arange(2 ** K)[:, None] >> np.arange(K)[None, :]) & 1       # (2^K, K)
    v = value(deltas @ masks.T.astype(float))                             # (n, 2^K)
    size = masks.sum(axis=1)
    w = np.array([math.factorial(s) * math.factorial(K - s - 1) / math.factorial(K) if s < K else 0.0
                  for s in size])
    phi = np.zeros((n, K))
    for k in range(K):
        without = np.nonzero(masks[:, k] == 0)[0]
        with_k = without | (1 << k)
        phi[:, k] = (v[:, with_k] - v[:, without]) @ w[without]
    return phi


def shapley_contributions(C: np.ndarray, weights: np.ndarray, means: np.ndarray, eta_ref: float,
                          eta_bar: float) -> np.ndarray:
    """Contributions (score points) of components C (n, K) to S(eta) - S(eta_bar), eta linear in C."""
    D = (C - means[None, :]) * weights[None, :]
    return exact_shapley(D, lambda shift: health_from_eta(eta_bar + shift, eta_ref))


# --- the estimator --------------------------------------------------------------------------------------

def _available(measure: Measure, columns) -> bool:
    return all(c in columns for c in measure.requires)


class HealthScoreModel(BaseEstimator):
    """0–100 customer health score from documented component scores weighted by a churn logistic regression.

    Parameters
    ----------
    components : component names to use (default: every component with data: deployment, adoption,
        engagement, nps, support, and value / sentiment when their columns exist).
    drop_flagged : refit without the flagged components that enter with an implausible sign (a positive
        coefficient on churn: the score would reward them); the report keeps all of them.
    drop_insignificant : with ``drop_flagged``, also drop the components flagged because they add nothing
        (drop-one LR p > alpha). Off by default: on a book of a few hundred renewals most components miss
        significance, and dropping them leaves a score of one or two components that ranks churn worse than
        the equal-weight scorecard (docs/health.md).
    weighting : ``"learned"`` (component weights from the logistic regression) or ``"equal"``: the
        equal-weight scorecard of the measurable components (equal measure weights, equal component
        weights; only the slope of the score map is fitted) - the small-book fallback.
    alpha : significance level of the flags and the confidence intervals.
    cluster : cluster-robust (by account) standard errors and a design-effect corrected LR test; rows are
        repeated monthly snapshots of the same renewals, so naive standard errors would be far too small.

    Predicting before ``fit`` raises sklearn's ``NotFittedError``. Missing measures score the neutral 50, so
    ``X`` may lack measure columns at predict time (the affected measures are then neutral).
    """

    def __init__(self, *, components: Sequence[str] | None = None, drop_flagged: bool = True, alpha: float = 0.05,
                 cluster: bool = True, drop_insignificant: bool = False, weighting: str = "learned"):
        self.components = components
        self.drop_flagged = drop_flagged
        self.alpha = alpha
        self.cluster = cluster
        self.drop_insignificant = drop_insignificant
        self.weighting = weighting

    # ---- transforms
    def _measures(self, columns) -> list[Measure]:
        wanted = list(self.components) if self.components is not None else list(COMPONENTS)
        unknown = set(wanted) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown health components {sorted(unknown)}; known: {list(COMPONENTS)}")
        return [m for m in MEASURES if m.component in wanted and _available(m, columns)]

    def _fit_transforms(self, X: pd.DataFrame, y: np.ndarray) -> None:
        self.transforms_ = {}
        for m in self.measures_:
            raw = m.raw(X)
            if m.transform in ("rank", "rank_desc"):
                self.transforms_[m.name] = {"rank": _Rank(raw)}
            elif m.transform == "u_rank":
                rk = _Rank(raw)
                r = rk(raw) / 100.0
                self.transforms_[m.name] = {"rank": rk, "r_star": _least_risky_rank(r, y)}
            else:
                self.transforms_[m.name] = {}

    def measure_scores(self, X: pd.DataFrame) -> pd.DataFrame:
        """0–100 score of every measure (missing -> NEUTRAL)."""
        check_is_fitted(self)
        return self._measure_scores(X)

    def _measure_scores(self, X: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(dict(zip((m.name for m in self.measures_), self._measure_rows(X))), index=X.index)

    def _measure_rows(self, X: pd.DataFrame | Mapping[str, np.ndarray]) -> np.ndarray:
        """The measure scores as one row per measure (``measures_`` order) and one column per row of X."""
        cols = _float_columns(X, self.feature_names_in_)
        out = []
        for m in self.measures_:
            raw = m.raw(cols)
            t = self.transforms_[m.name]
            if m.transform == "rank":
                s = t["rank"](raw)
            elif m.transform == "rank_desc":
                s = 100.0 - t["rank"](raw)
            elif m.transform == "u_rank":
                r, rs = t["rank"](raw) / 100.0, t["r_star"]
                s = 100.0 * (1.0 - np.abs(r - rs) / max(rs, 1.0 - rs))
            else:
                s = m.fixed(raw)
            out.append(np.where(np.isnan(s), NEUTRAL, s))
        return np.vstack(out) if out else np.empty((0, _n_rows(X)))

    def component_scores(self, X: pd.DataFrame, equal_measure_weights: bool = False) -> pd.DataFrame:
        """0–100 score of every component: the weighted mean of its measure scores with the learned
        `measure_weights_` (or, with `equal_measure_weights`, the plain mean: the hand-built scorecard)."""
        check_is_fitted(self)
        return self._component_scores(X, equal_measure_weights)

    def _component_scores(self, X: pd.DataFrame, equal_measure_weights: bool = False) -> pd.DataFrame:
        if equal_measure_weights or not hasattr(self, "measure_weights_"):
            ms = self._measure_scores(X)
            return pd.DataFrame({c: ms[[m.name for m in self.measures_ if m.component == c]].mean(axis=1)
                                 for c in self.components_}, index=X.index)
        return pd.DataFrame(dict(zip(self.components_, self._component_rows(X))), index=X.index)

    def _component_rows(self, X: pd.DataFrame | Mapping[str, np.ndarray]) -> np.ndarray:
        """The (learned-weight) component scores as one row per component (``components_`` order) and one
        column per row of X; the same arithmetic, on the same memory layout, as a frame of measure scores."""
        ms = self._measure_rows(X)
        out = []
        for c in self.components_:
            idx = [i for i, m in enumerate(self.measures_) if m.component == c]
            w = np.array([self.measure_weights_[self.measures_[i].name] for i in idx])
            out.append(ms[idx].T @ w)
        return np.vstack(out)

    def _fit_measure_weights(self, X: pd.DataFrame, y: np.ndarray) -> None:
        """Within each component, weights of its measures: from a logistic regression of churn on all measure
        scores (backward elimination of measures with the implausible sign), normalised to sum to 1 within the
        component; equal weights when none of its measures is left."""
        ms = self._measure_scores(X)
        self.measure_weights_, self.measure_report_ = {}, {}
        # one joint regression, so a measure that only repeats another component's information gets little
        # weight; its weights are then normalised within each component
        joint = _plausible_weights(ms.to_numpy(dtype=float) / COEF_SCALE, y)
        cols = list(ms.columns)
        for c in self.components_:
            names = [m.name for m in self.measures_ if m.component == c]
            coef = joint[[cols.index(n) for n in names]]
            total = float(np.sum(coef))
            for n, b in zip(names, coef):
                self.measure_weights_[n] = float(b / total) if total > 0 else 1.0 / len(names)
                self.measure_report_[n] = {"component": c, "weight": self.measure_weights_[n],
                                           "coef_per_10": float(-b),
                                           "dropped": bool(b <= 0 and total > 0)}

    def _equal_measure_weights(self) -> None:
        self.measure_weights_, self.measure_report_ = {}, {}
        for c in self.components_:
            names = [m.name for m in self.measures_ if m.component == c]
            for n in names:
                self.measure_weights_[n] = 1.0 / len(names)
                self.measure_report_[n] = {"component": c, "weight": 1.0 / len(names), "coef_per_10": float("nan"),
                                           "dropped": False}

    # ---- fit
    def fit(self, X: pd.DataFrame, y, groups=None):
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        y = np.asarray(y, dtype=float)
        if len(np.unique(y)) < 2:
            raise ValueError("need both churned and renewed outcomes to fit the health weights")
        self.measures_ = self._measures(X.columns)
        self.components_ = [c for c in COMPONENTS if any(m.component == c for m in self.measures_)]
        wanted = list(self.components) if self.components is not None else list(COMPONENTS)
        self.skipped_ = {c: "no data for it in the source" for c in wanted if c not in self.components_}
        if not self.components_:
            raise ValueError("none of the health components has data")
        self.feature_names_in_ = np.array(sorted({c for m in self.measures_ for c in m.requires}), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self._fit_transforms(X, y)
        if self.weighting == "equal":
            self._equal_measure_weights()
        else:
            self._fit_measure_weights(X, y)
        C = self._component_scores(X)
        if groups is None and self.cluster and "account_id" in X:
            groups = X["account_id"].to_numpy()
        g = pd.factorize(np.asarray(groups))[0] if (groups is not None and self.cluster) else None
        self.report_ = _inference_or_none(C, y, g, self.alpha)
        self.flagged_ = [c for c, r in self.report_["components"].items() if r["flagged"]]
        if self.weighting == "equal":
            self._fit_equal(C, y)
        else:
            self._fit_learned(C, y, g)
        self.fallback_ = "equal-weight scorecard of the measurable components" if self.weighting == "equal" else None
        self.means_ = C.mean(axis=0).to_numpy(dtype=float)    # the Shapley baseline / portfolio-typical account
        self.eta_ref_ = float(self.intercept_ + self.weights_ @ self.means_)
        self.baseline_ = 50.0
        # for the risk triggers: segment benchmarks ("*" = all segments, for segments unseen here) and the
        # typical resolution time
        self.segment_benchmark_ = {}
        if "seat_utilisation" in X:
            if "segment" in X:
                self.segment_benchmark_ = {str(k): float(v) for k, v in
                                           X.groupby("segment")["seat_utilisation"].median().items()}
            self.segment_benchmark_["*"] = float(np.nanmedian(_num(X, "seat_utilisation")))
        self.resolution_median_ = (float(np.nanmedian(_num(X, "mean_resolution_days_180d")))
                                   if "mean_resolution_days_180d" in X else None)
        tr = self.predict(X)
        self.train_score_quantiles_ = {str(q): float(np.quantile(tr, q / 100)) for q in range(0, 101)}
        self.n_train_ = int(len(X))
        return self

    def _fit_learned(self, C: pd.DataFrame, y: np.ndarray, g) -> None:
        """Component weights from the logistic regression, without the components to drop."""
        if not np.isfinite(self.report_["intercept"]):
            raise ValueError(f"the component weights cannot be estimated on this data ({self.report_['error']}); "
                             "use weighting='equal'")
        rep = self.report_["components"]
        drop = {c for c in self.flagged_ if rep[c]["coef"] > 0 or (self.drop_insignificant and
                                                                 rep[c]["lr_p_value"] > self.alpha)}
        used = [c for c in self.components_ if c not in drop] if self.drop_flagged else list(self.components_)
        if not used:
            used = list(self.components_)
        self.used_components_ = used
        final = _inference(C[used], y, g, self.alpha) if used != self.components_ else self.report_
        self.final_report_ = final
        self.intercept_ = final["intercept"]
        w = np.zeros(len(self.components_))
        for i, c in enumerate(self.components_):
            if c in used:
                w[i] = final["components"][c]["coef"] / COEF_SCALE
        self.weights_ = w                                     # log-odds of churn per component point

    def _fit_equal(self, C: pd.DataFrame, y: np.ndarray) -> None:
        """The equal-weight scorecard: eta = b0 + b1 * mean(components) / 10, so every component weighs
        b1 / K; b1 is kept below 0 (higher components, healthier) so the score ranks as the scorecard does."""
        from sklearn.linear_model import LogisticRegression

        K = len(self.components_)
        s = C[self.components_].to_numpy(dtype=float).mean(axis=1, keepdims=True) / COEF_SCALE
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(s, y)
        b0, b1 = float(lr.intercept_[0]), min(float(lr.coef_[0, 0]), -1e-3)
        self.used_components_ = list(self.components_)
        self.intercept_ = b0
        self.weights_ = np.full(K, b1 / K / COEF_SCALE)
        nan = float("nan")
        self.final_report_ = {"intercept": b0, "components": {
            c: {"coef": b1 / K, "se": nan, "p_value": nan, "ci_low": nan, "ci_high": nan} for c in self.components_}}

    # ---- sklearn protocol
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "weights_")

    def __sklearn_tags__(self):
        tags = dataframe_input_tags(super().__sklearn_tags__())   # a missing measure scores the neutral 50
        tags.target_tags.required = True
        return tags

    # ---- predict
    def linear_predictor(self, X: pd.DataFrame) -> np.ndarray:
        """eta: the fitted churn log-odds at the next renewal, b0 + sum_k w_k * c_k."""
        check_is_fitted(self)
        C = self._component_scores(X).to_numpy(dtype=float)
        return self.intercept_ + C @ self.weights_

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Health score 0–100 (higher = healthier)."""
        check_is_fitted(self)
        return health_from_eta(self.linear_predictor(X), self.eta_ref_)

    def predict_with_components(self, X: pd.DataFrame | Mapping[str, np.ndarray]) -> tuple[np.ndarray, pd.DataFrame]:
        """(`predict`, `component_scores`) of X from one pass over its columns, equal to calling both.

        X may also be a mapping of column name -> 1-D array (all of one length), as on-demand scoring holds
        request rows; the components frame then has a RangeIndex. KeyError for a measure column X lacks.
        """
        check_is_fitted(self)
        rows = self._component_rows(X)
        C = rows.T
        score = health_from_eta(self.intercept_ + C @ self.weights_, self.eta_ref_)
        index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(rows.shape[1])
        return score, pd.DataFrame(dict(zip(self.components_, rows)), index=index)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """[P(renew), P(churn)] at the next renewal from the fitted logistic regression (not a calibrated
        churn model: it sees health components only, no contract or profile covariates)."""
        check_is_fitted(self)
        p = expit(self.linear_predictor(X))
        return np.column_stack([1 - p, p])

    def equal_weight_score(self, X: pd.DataFrame) -> np.ndarray:
        """The equal-weight scorecard a team would build by hand from the same measures and transforms: each
        component the plain mean of its measure scores, the score the plain mean of the components."""
        check_is_fitted(self)
        return self._component_scores(X, equal_measure_weights=True).mean(axis=1).to_numpy(dtype=float)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact Shapley contributions (score points) of each component to score - baseline (50).
        Components outside the fitted score (dropped) contribute exactly 0."""
        check_is_fitted(self)
        C = self._component_scores(X).to_numpy(dtype=float)
        out = np.zeros_like(C)
        idx = [i for i, w in enumerate(self.weights_) if w != 0]
        if idx:
            out[:, idx] = shapley_contributions(C[:, idx], self.weights_[idx], self.means_[idx], self.eta_ref_,
                                                self.eta_ref_)
        return pd.DataFrame(out, index=X.index, columns=self.components_)

    def score_cutoffs(self, red: float = 40.0, yellow: float = 70.0, mode: str = "fixed") -> tuple[float, float]:
        """Band cut-offs on the score: fixed, or (mode 'quantile') the red-th / yellow-th percentiles of the
        training scores."""
        if mode == "quantile":
            check_is_fitted(self)
            q = self.train_score_quantiles_
            pct = np.array([float(k) for k in q])
            val = np.array(list(q.values()))
            return float(np.interp(red, pct, val)), float(np.interp(yellow, pct, val))
        return float(red), float(yellow)


def _plausible_weights(M: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative "health" weights (minus the churn log-odds coefficients) of the columns of M from a
    logistic regression of y on them; columns whose coefficient has the implausible sign are dropped one at a
    time (the worst first) and the rest refitted. Returns zeros when no column survives."""
    from sklearn.linear_model import LogisticRegression

    keep = list(range(M.shape[1]))
    w = np.zeros(M.shape[1])
    while keep:
        if len(np.unique(y)) < 2:
            return w
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(M[:, keep], y)
        b = -lr.coef_[0]
        if np.all(b > 0):
            w[keep] = b
            return w
        keep.pop(int(np.argmin(b)))
    return w


def _least_risky_rank(r: np.ndarray, y: np.ndarray) -> float:
    """The percentile rank (0–1) with the lowest churn in training: vertex of a quadratic logistic fit of churn
    on the rank when convex with the vertex inside [0, 1], else the better end."""
    import statsmodels.api as sm

    ok = ~np.isnan(r)
    r, y = r[ok], y[ok]
    if len(r) < 50 or len(np.unique(y)) < 2:
        return 0.5
    Z = np.column_stack([np.ones_like(r), r - 0.5, (r - 0.5) ** 2])
    try:
        res = sm.Logit(y, Z).fit(disp=0, maxiter=100)
        _, b, c = res.params
    except Exception:  # noqa: BLE001 - a degenerate fit falls back to the middle
        return 0.5
    if c > 0:
        v = 0.5 - b / (2 * c)
        if 0.0 <= v <= 1.0:
            return float(v)
    ends = {0.0: c * 0.25 - b * 0.5, 1.0: c * 0.25 + b * 0.5}
    return float(min(ends, key=ends.get))


def _inference_or_none(C: pd.DataFrame, y: np.ndarray, groups, alpha: float) -> dict:
    """:func:`_inference`, or on data it cannot fit (a tiny book: separation, a singular design) the same
    report with NaN estimates, nothing flagged and the reason in ``error``."""
    try:
        with np.errstate(all="ignore"):
            out = _inference(C, y, groups, alpha)
        out["error"] = None
        return out
    except Exception as e:  # noqa: BLE001 - statsmodels raises several types (LinAlgError, PerfectSeparation…)
        nan = float("nan")
        why = f"{type(e).__name__}: {e}"[:200]
        return {"intercept": nan, "llf": nan, "n": int(len(y)), "error": why,
                "n_clusters": int(len(np.unique(groups))) if groups is not None else int(len(y)),
                "components": {c: {"coef": nan, "se": nan, "p_value": nan, "ci_low": nan, "ci_high": nan, "z": None,
                                   "odds_ratio_per_10": nan, "lr_stat": nan, "design_effect": nan,
                                   "lr_p_value": nan, "flagged": False, "naive_se": nan,
                                   "flag_reason": f"not estimable on this data ({why})"} for c in C.columns}}


def _inference(C: pd.DataFrame, y: np.ndarray, groups, alpha: float) -> dict:
    """Logit of churn on components/COEF_SCALE: coefficients, cluster-robust SEs, Wald CIs and p-values, and a
    drop-one likelihood-ratio test per component with the Rao–Scott first-order design-effect correction
    (LR / deff, deff = robust / model-based variance of the dropped coefficient, floored at 1)."""
    import statsmodels.api as sm

    names = list(C.columns)
    Z = sm.add_constant(C.to_numpy(dtype=float) / COEF_SCALE, has_constant="add")
    model = sm.Logit(y, Z)
    kw = {"cov_type": "cluster", "cov_kwds": {"groups": groups}} if groups is not None else {}
    res = model.fit(disp=0, maxiter=200, **kw)
    naive = np.linalg.inv(-model.hessian(res.params))
    robust = np.asarray(res.cov_params())
    ci = np.asarray(res.conf_int(alpha))
    out = {"intercept": float(res.params[0]), "llf": float(res.llf), "n": int(len(y)),
           "n_clusters": int(len(np.unique(groups))) if groups is not None else int(len(y)), "components": {}}
    for i, c in enumerate(names, start=1):
        if len(names) > 1:
            Zd = np.delete(Z, i, axis=1)
            llf0 = sm.Logit(y, Zd).fit(disp=0, maxiter=200).llf
        else:
            llf0 = sm.Logit(y, Z[:, :1]).fit(disp=0, maxiter=200).llf
        lr = max(0.0, 2 * (res.llf - llf0))
        deff = max(1.0, robust[i, i] / naive[i, i])
        lr_p = float(stats.chi2.sf(lr / deff, 1))
        coef, se = float(res.params[i]), float(np.sqrt(robust[i, i]))
        flagged_reason = []
        if lr_p > alpha:
            flagged_reason.append(f"adds nothing (drop-one LR p = {lr_p:.3g} > {alpha})")
        if coef > 0:
            flagged_reason.append("implausible sign (higher score, more churn)")
        out["components"][c] = {
            "coef": coef, "se": se, "p_value": float(res.pvalues[i]),
            "ci_low": float(ci[i, 0]), "ci_high": float(ci[i, 1]), "z": float(coef / se) if se > 0 else None,
            "odds_ratio_per_10": float(np.exp(coef)), "lr_stat": float(lr), "design_effect": float(deff),
            "lr_p_value": lr_p, "flagged": bool(flagged_reason), "flag_reason": "; ".join(flagged_reason),
            "naive_se": float(np.sqrt(naive[i, i]))}
    return out


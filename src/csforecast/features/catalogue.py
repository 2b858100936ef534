"""What each feature means to a person: its words, how to show its value, its health component and the
lever a CSM can pull. Drivers are associations learned from history, never causes; the wording says so."""
from __future__ import annotations

import contextlib
import gc
import json
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureInfo:
    label: str
    component: str
    lever: str
    fmt: str = "num"   # num | pct | days | int | money | cat | bool | ratio


_L_ADOPT = "run an adoption workshop / enable unused features"
_L_DEPLOY = "drive seat activation (onboarding for unassigned seats)"
_L_ENGAGE = "schedule an executive business review"
_L_SUPPORT = "escalate open tickets with Support; review recent P1s with the customer"
_L_NPS = "close the loop with detractors"
_L_CHAMP = "find and enable a new champion"
_L_COMMERCIAL = "start the renewal conversation early"
_L_VALUE = "document realised value with the customer (ROI review)"
_L_SENTIMENT = "agree a recovery plan with the CSM"
_NONE = "none (account profile)"

CATALOGUE: dict[str, FeatureInfo] = {
    "seat_utilisation": FeatureInfo("seat utilisation", "Deployment", _L_DEPLOY, "pct"),
    "active_users_30d": FeatureInfo("daily active users (30-day mean)", "Adoption", _L_ADOPT),
    "active_users_prev30d": FeatureInfo("daily active users (prior 30 days)", "Adoption", _L_ADOPT),
    "active_users_90d": FeatureInfo("daily active users (90-day mean)", "Adoption", _L_ADOPT),
    "active_users_trend_30d": FeatureInfo("active users, last 30 days vs prior 30", "Adoption", _L_ADOPT, "ratio"),
    "active_users_slope_90d": FeatureInfo("active-user trend (per day, 90 days)", "Adoption", _L_ADOPT),
    "logins_30d": FeatureInfo("daily logins (30-day mean)", "Adoption", _L_ADOPT),
    "logins_prev30d": FeatureInfo("daily logins (prior 30 days)", "Adoption", _L_ADOPT),
    "logins_90d": FeatureInfo("daily logins (90-day mean)", "Adoption", _L_ADOPT),
    "logins_trend_30d": FeatureInfo("logins, last 30 days vs prior 30", "Adoption", _L_ADOPT, "ratio"),
    "logins_slope_90d": FeatureInfo("login trend (per day, 90 days)", "Adoption", _L_ADOPT),
    "days_since_login": FeatureInfo("days since last login", "Adoption", _L_ADOPT, "days"),
    "key_features_used_30d": FeatureInfo("key features used (30 days)", "Adoption", _L_ADOPT),
    "key_features_used_prev30d": FeatureInfo("key features used (prior 30 days)", "Adoption", _L_ADOPT),
    "key_features_used_90d": FeatureInfo("key features used (90 days)", "Adoption", _L_ADOPT),
    "key_features_used_trend_30d": FeatureInfo("key-feature use, last 30 vs prior 30", "Adoption", _L_ADOPT, "ratio"),
    "key_features_used_slope_90d": FeatureInfo("key-feature trend (90 days)", "Adoption", _L_ADOPT),
    "key_feature_breadth": FeatureInfo("share of key features used", "Adoption", _L_ADOPT, "pct"),
    "touches_90d": FeatureInfo("CSM touches in 90 days", "Engagement", _L_ENGAGE, "int"),
    "touches_prev90d": FeatureInfo("CSM touches in the prior 90 days", "Engagement", _L_ENGAGE, "int"),
    "days_since_touch": FeatureInfo("days since last CSM touch", "Engagement", _L_ENGAGE, "days"),
    "exec_meetings_365d": FeatureInfo("executive meetings in 12 months", "Engagement", _L_ENGAGE, "int"),
    "days_since_exec_meeting": FeatureInfo("days since last executive meeting", "Engagement", _L_ENGAGE, "days"),
    "qbrs_365d": FeatureInfo("QBRs in 12 months", "Engagement", _L_ENGAGE, "int"),
    "respondent_roles_365d": FeatureInfo("stakeholder roles heard from (12 months)", "Engagement", _L_ENGAGE, "int"),
    "days_since_champion_left": FeatureInfo("days since the champion left", "Engagement", _L_CHAMP, "days"),
    "days_since_stakeholder_change": FeatureInfo("days since a stakeholder change", "Engagement", _L_CHAMP, "days"),
    "champion_left_365d": FeatureInfo("champion departures in 12 months", "Engagement", _L_CHAMP, "int"),
    "csm_sentiment": FeatureInfo("CSM sentiment (latest, 1-5)", "Sentiment", _L_SENTIMENT),
    "days_since_sentiment": FeatureInfo("days since the CSM last recorded sentiment", "Sentiment", _L_SENTIMENT,
                                        "days"),
    "value_realised": FeatureInfo("success-plan goals met (latest review)", "Value/ROI", _L_VALUE, "pct"),
    "roi_latest": FeatureInfo("documented ROI (latest review)", "Value/ROI", _L_VALUE, "ratio"),
    "days_since_value_review": FeatureInfo("days since the last value review", "Value/ROI", _L_VALUE, "days"),
    "has_csm": FeatureInfo("has an assigned CSM", "Engagement", "assign a CSM", "bool"),
    "nps_latest": FeatureInfo("latest NPS response", "NPS", _L_NPS),
    "nps_mean_365d": FeatureInfo("mean NPS response (12 months)", "NPS", _L_NPS),
    "nps_count_365d": FeatureInfo("NPS responses (12 months)", "NPS", _L_NPS, "int"),
    "days_since_nps": FeatureInfo("days since last NPS response", "NPS", _L_NPS, "days"),
    "account_nps_365d": FeatureInfo("account NPS (12 months)", "NPS", _L_NPS),
    "csat_latest": FeatureInfo("latest CSAT survey", "Support", _L_SUPPORT),
    "csat_count_365d": FeatureInfo("CSAT surveys (12 months)", "Support", _L_SUPPORT, "int"),
    "tickets_30d": FeatureInfo("tickets in 30 days", "Support", _L_SUPPORT, "int"),
    "tickets_90d": FeatureInfo("tickets in 90 days", "Support", _L_SUPPORT, "int"),
    "tickets_p1_30d": FeatureInfo("P1 tickets in 30 days", "Support", _L_SUPPORT, "int"),
    "tickets_p1_90d": FeatureInfo("P1 tickets in 90 days", "Support", _L_SUPPORT, "int"),
    "tickets_p2_90d": FeatureInfo("P2 tickets in 90 days", "Support", _L_SUPPORT, "int"),
    "tickets_365d": FeatureInfo("tickets in 12 months", "Support", _L_SUPPORT, "int"),
    "open_tickets": FeatureInfo("open tickets", "Support", _L_SUPPORT, "int"),
    "tickets_90d_per_100_seats": FeatureInfo("tickets in 90 days per 100 seats", "Support", _L_SUPPORT),
    "tickets_p1_90d_per_100_seats": FeatureInfo("P1 tickets in 90 days per 100 seats", "Support", _L_SUPPORT),
    "tickets_365d_per_100_seats": FeatureInfo("tickets in 12 months per 100 seats", "Support", _L_SUPPORT),
    "open_tickets_per_100_seats": FeatureInfo("open tickets per 100 seats", "Support", _L_SUPPORT),
    "mean_resolution_days_180d": FeatureInfo("mean ticket resolution time (180 days)", "Support", _L_SUPPORT, "days"),
    "ticket_csat_180d": FeatureInfo("ticket CSAT (180 days)", "Support", _L_SUPPORT),
    "ticket_csat_count_180d": FeatureInfo("rated tickets (180 days)", "Support", _L_SUPPORT, "int"),
    "arr": FeatureInfo("ARR", "Account profile", _NONE, "money"),
    "seats": FeatureInfo("seats", "Account profile", _NONE, "int"),
    "n_active_contracts": FeatureInfo("active contracts (incl. add-ons)", "Account profile", _NONE, "int"),
    "term_days": FeatureInfo("contract term", "Account profile", _NONE, "days"),
    "auto_renew": FeatureInfo("auto-renew clause", "Account profile", _L_COMMERCIAL, "bool"),
    "contract_age_days": FeatureInfo("days into the current contract", "Account profile", _NONE, "days"),
    "renewals_so_far": FeatureInfo("renewals so far", "Account profile", _NONE, "int"),
    "last_arr_change": FeatureInfo("ARR change at last renewal", "Account profile", _L_COMMERCIAL, "pct"),
    "tenure_days": FeatureInfo("tenure", "Account profile", _NONE, "days"),
    "days_to_renewal": FeatureInfo("days to renewal", "Account profile", _L_COMMERCIAL, "days"),
    "segment": FeatureInfo("segment", "Account profile", _NONE, "cat"),
    "industry": FeatureInfo("industry", "Account profile", _NONE, "cat"),
    "region": FeatureInfo("region", "Account profile", _NONE, "cat"),
}


def info(feature: str) -> FeatureInfo:
    return CATALOGUE.get(feature, FeatureInfo(feature.replace("_", " "), "Other", "review with the account team"))


_FORMATS = {
    "cat": str,
    "pct": lambda v: f"{100 * v:.0f} %",
    "ratio": lambda v: f"{100 * v:+.0f} %",
    "days": lambda v: f"{v:.0f} days",
    "int": lambda v: f"{v:.0f}",
    "money": lambda v: f"${v:,.0f}",
    "bool": lambda v: "yes" if v >= 0.5 else "no",
    "num": lambda v: f"{v:.3g}",
}


def _format(fmt: str, value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "none recorded"
    return str(value) if fmt == "cat" else _FORMATS.get(fmt, _FORMATS["num"])(float(value))


def format_value(feature: str, value) -> str:
    return _format(info(feature).fmt, value)


def _driver_text(fi: FeatureInfo, value, contribution: float) -> str:
    direction = "higher" if contribution > 0 else "lower"
    sign = "+" if contribution >= 0 else "−"
    return (f"{fi.label} {_format(fi.fmt, value)} ({sign}{abs(contribution):.2f} log-odds; "
            f"associated with {direction} churn risk)")


def driver_text(feature: str, value, contribution: float) -> str:
    """e.g. 'seat utilisation 38 % (−0.90 log-odds, associated with higher risk)'."""
    return _driver_text(info(feature), value, contribution)


def top_drivers(row_values: dict, contributions: dict, k: int = 5) -> list[dict]:
    """The k largest |contributions| of one row, in words, with component and lever."""
    items = sorted(((f, c) for f, c in contributions.items() if f != "base_value" and c == c),
                   key=lambda fc: -abs(fc[1]))[:k]
    out = []
    for f, c in items:
        fi = info(f)
        v = row_values.get(f)
        out.append({"feature": f, "value": None if v is None or (isinstance(v, float) and np.isnan(v)) else v,
                    "contribution": round(float(c), 4), "text": driver_text(f, v, c),
                    "component": fi.component, "lever": fi.lever})
    return out


def _top_k_order(C: np.ndarray, k: int) -> np.ndarray:
    """Per row of ``C``, the column indexes of its ``k`` largest |values|, largest first (NaN last, ties in
    column order: what a stable sort gives): ``k`` passes of ``argmax`` (its first maximum is the first
    column among ties), each taking the chosen column out of the running."""
    mag = np.abs(C)
    if np.isnan(mag.sum()):          # one pass to find out (a sum of |values| is NaN only through a NaN)
        mag[np.isnan(mag)] = -1.0
    order = np.empty((C.shape[0], k), dtype=np.intp)
    rows = np.arange(C.shape[0])
    for slot in range(k):
        order[:, slot] = j = mag.argmax(axis=1)
        mag[rows, j] = -2.0
    return order


@contextlib.contextmanager
def _gc_paused():
    """Python's cyclic garbage collector paused while a block makes many small lists that hold no cycles: in
    a process holding ~1M tracked objects (models, MLflow), each collection the new lists trigger walks them
    all (measured: 0.54 s of the 0.61 s it takes to make 50,000 rows of drivers)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def compact_drivers_rows(values, contributions: np.ndarray, features, k: int = 5) -> list[list]:
    """The ``k`` largest |contributions| of each row in the compact form a score set keeps: per row one flat
    list ``[feature, value, contribution, feature, value, contribution, ...]``, largest first (the value as a
    Python scalar, None when missing; the contribution unrounded), put into words only when an account is shown
    (:func:`render_drivers`). ``values`` is a DataFrame holding the ``features`` columns, ``contributions`` an
    (n rows, len(features)) array in the order of ``features``; NaN contributions are left out, ties keep the
    feature order. Vectorised: no Python work per driver (the lists are made by numpy)."""
    C = np.asarray(contributions, dtype=float)
    n = C.shape[0]
    if n == 0:
        return []
    k = min(k, C.shape[1])
    order = _top_k_order(C, k)
    chosen = np.take_along_axis(C, order, axis=1)
    used = (~np.isnan(chosen)).sum(axis=1)       # NaN contributions sort last: a row keeps its first `used`
    triples = np.empty((n, k, 3), dtype=object)
    triples[:, :, 0] = np.asarray(features, dtype=object)[order]
    triples[:, :, 2] = chosen
    # the chosen values, one column at a time over the (row, slot) places that chose it (grouped by one sort
    # of the chosen column indexes, not a copy of every value): float columns in one gather each (NaN ->
    # None), the others (int, bool, text) as Python scalars like DataFrame.to_dict gives
    picked = triples[:, :, 1]        # a view: the values are written in place
    flat = order.ravel()
    by_col = np.argsort(flat, kind="stable")                   # ascending place within each column
    bounds = np.searchsorted(flat[by_col], np.arange(len(features) + 1))
    got = np.full(n * k, np.nan)
    others = []
    for j, f in enumerate(features):
        places = by_col[bounds[j]:bounds[j + 1]]
        if not len(places):
            continue
        if values[f].dtype.kind == "f":
            got[places] = values[f].to_numpy(dtype=float, na_value=np.nan)[places // k]
        else:
            others.append((f, places))
    got = got.reshape(n, k)
    picked[:] = got
    picked[np.isnan(got)] = None
    for f, places in others:
        rows_j, slots = places // k, places % k
        col = values[f].to_numpy()[rows_j]
        if col.dtype.kind in "iub":
            picked[rows_j, slots] = col
        else:
            picked[rows_j, slots] = [None if isinstance(v, float) and v != v else v for v in col.tolist()]
    with _gc_paused():
        rows = triples.reshape(n, 3 * k).tolist()
    for i in np.flatnonzero(used < k).tolist():
        rows[i] = rows[i][:3 * used[i]]
    return rows


def render_drivers(stored) -> list[dict]:
    """The drivers of one account in words: the one rendering of a score set's ``churn_drivers`` shared by
    every reader (API, dashboard, work lists, exports). ``stored`` is the compact flat list
    ``[feature, value, contribution, ...]`` (:func:`compact_drivers_rows`), or its JSON text, or a list of
    already rendered dicts (score sets written before drivers were kept compact: returned as they are).
    Each driver: ``feature``, ``value``, ``contribution`` (rounded to 4 decimals), ``text`` (the words,
    from the unrounded contribution), ``component``, ``lever``. Anything else (None, NaN, text that is not
    JSON) is no drivers: []."""
    if isinstance(stored, str):
        try:
            stored = json.loads(stored)
        except ValueError:
            return []
    if not isinstance(stored, (list, tuple, np.ndarray)) or not len(stored):
        return []
    if isinstance(stored[0], dict):
        return list(stored)
    out = []
    for i in range(0, len(stored) - 2, 3):
        f, v, c = stored[i], stored[i + 1], stored[i + 2]
        fi = info(f)
        out.append({"feature": f, "value": None if v is None or (isinstance(v, float) and v != v) else v,
                    "contribution": round(float(c), 4), "text": _driver_text(fi, v, c),
                    "component": fi.component, "lever": fi.lever})
    return out


def top_drivers_rows(values, contributions: np.ndarray, features, k: int = 5) -> list[list[dict]]:
    """`top_drivers` of many rows at once (the same lists, item for item): :func:`compact_drivers_rows`
    rendered by :func:`render_drivers`."""
    return [render_drivers(r) for r in compact_drivers_rows(values, contributions, features, k)]

for _m, _name, _comp, _lever in (("active_users", "daily active users", "Adoption", _L_ADOPT),
                                 ("logins", "daily logins", "Adoption", _L_ADOPT),
                                 ("key_features_used", "key features used", "Adoption", _L_ADOPT)):
    CATALOGUE[f"{_m}_6m"] = FeatureInfo(f"{_name} (6-month mean)", _comp, _lever)
    CATALOGUE[f"{_m}_12m"] = FeatureInfo(f"{_name} (12-month mean)", _comp, _lever)
    CATALOGUE[f"{_m}_ewm3m"] = FeatureInfo(f"{_name} (weighted mean, 3-month half-life)", _comp, _lever)
    CATALOGUE[f"{_m}_ewm6m"] = FeatureInfo(f"{_name} (weighted mean, 6-month half-life)", _comp, _lever)
    CATALOGUE[f"{_m}_lifetime"] = FeatureInfo(f"{_name} (lifetime mean)", _comp, _lever)
CATALOGUE["seat_utilisation_90d"] = FeatureInfo("seat utilisation (90 days)", "Deployment", _L_DEPLOY, "pct")
CATALOGUE["seat_utilisation_12m"] = FeatureInfo("seat utilisation (12 months)", "Deployment", _L_DEPLOY, "pct")
CATALOGUE["seat_utilisation_ewm3m"] = FeatureInfo("seat utilisation (weighted, 3-month half-life)", "Deployment",
                                                  _L_DEPLOY, "pct")
CATALOGUE["seat_utilisation_ewm6m"] = FeatureInfo("seat utilisation (weighted, 6-month half-life)", "Deployment",
                                                  _L_DEPLOY, "pct")
CATALOGUE["seat_utilisation_lifetime"] = FeatureInfo("seat utilisation (lifetime)", "Deployment", _L_DEPLOY, "pct")
for _m, _name in (("active_users", "daily active users"), ("logins", "daily logins"),
                  ("key_features_used", "key features used")):
    CATALOGUE[f"{_m}_7d"] = FeatureInfo(f"{_name} (7-day mean)", "Adoption", _L_ADOPT)
CATALOGUE["seat_utilisation_7d"] = FeatureInfo("seat utilisation (7 days)", "Deployment", _L_DEPLOY, "pct")

# Churn models: firmographics beyond segment are left out by default: renewal decisions repeat over monthly
# snapshots, so a few thousand decisions look like tens of thousands of rows, and many-level categoricals then fit noise
# (on simulated data, where they carry no signal, they cost ~0.01–0.03 validation AUC). Add them back in an
# experiment (experiments/feature_groups_ablation.toml) to test them on your data.
DEFAULT_EXCLUDE = ("industry", "region")

"""The promotion guard: the one champion/challenger rule, for every family, for training and for promotions.

Decide, then commit. A family's trainer states its case as a :class:`Comparison` (its guard metric on its
validation rows, how that metric is computed for any model on the same rows, the simple baselines' outputs
there, the profile of the data it was trained on); :func:`decide` applies a :class:`PromotionPolicy` to it and
the current champion and returns a ``store.Verdict``; ``tracking.store.register_with_guard`` reads the
champion, asks the decision and only then registers the version and moves the aliases (``champion`` last).

The rules, in order (docs/operations.md):

1. **Baselines** - a challenger worse than a simple baseline on its own validation rows is refused, whatever
   the champion (health: the equal-weight and textbook scorecards' AUC; churn: the log loss of the pooled
   segment base rates; survival: the C-index 0.5 of a constant risk). "Worse" is a difference the paired
   bootstrap supports: the whole interval of its gain over the baseline lies below zero.
2. **No champion yet** - the challenger becomes champion.
3. **Data changes** - the challenger's training data is compared with the champion's (``data.profile``): a
   table emptied, more than half its rows or accounts lost, a date range that shrank or a label base rate that
   moved more than the setting blocks the promotion, unless the person accepted the change on purpose
   (``accept_data_change``, recorded as a tag).
4. **Margin** - champion and challenger are compared on the challenger's validation rows with a paired,
   account-clustered bootstrap; the challenger wins only when the whole interval of its gain lies above zero.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import json

import numpy as np
import pandas as pd

from csforecast.config import Settings, get_settings
from csforecast.data.profile import DataChange, data_changes, describe_changes
from csforecast.metrics.paired import Metric, PairedGain, paired_gain
from csforecast.scoring.families import Family
from csforecast.tracking import store
from csforecast.tracking.pyfunc import EstimatorModel

__all__ = ["GuardScore", "GuardMetric", "Comparison", "PromotionPolicy", "decide", "register_candidate",
           "log_and_register", "version_summary"]


@dataclass(frozen=True)
class GuardScore:
    """A candidate's score on the validation rows by its family's guard metric."""

    metric: str                 # a key of Family.metrics, e.g. "log_loss"
    value: float
    higher_is_better: bool
    n_rows: int

    @classmethod
    def of(cls, family: Family, value: float, n_rows: int) -> "GuardScore":
        return cls(family.guard_metric, float(value), family.guard_higher_is_better, int(n_rows))

    def beats(self, champion_value: float) -> bool:
        """Strictly better than ``champion_value`` (a NaN on either side never beats)."""
        return bool(self.value > champion_value if self.higher_is_better else self.value < champion_value)


@dataclass(frozen=True)
class GuardMetric:
    """A family's guard metric on fixed validation rows, for any model: ``outputs(estimator)`` gives the
    model's per-row output (probabilities, scores, risks), ``exact(outputs)`` the metric on all rows and
    ``resample(outputs)`` the function of a bootstrap resample's row indices (``metrics.paired``)."""

    outputs: Callable[[object], np.ndarray]
    exact: Callable[[np.ndarray], float]
    resample: Callable[[np.ndarray], Metric]


@dataclass(frozen=True)
class Comparison:
    """A candidate's case to the guard: its guard score, the guard metric on its validation rows, its outputs
    there, the simple baselines' outputs on the same rows ({name: outputs}), the account of each row (the
    bootstrap's clusters), the profile of its training data and what it is when it is a fallback."""

    guard: GuardScore
    metric: GuardMetric
    outputs: np.ndarray
    baselines: dict[str, np.ndarray]
    clusters: np.ndarray
    label: str
    profile: dict | None = None
    fallback: str | None = None
    tags: dict = field(default_factory=dict)

    def version_tags(self) -> dict[str, str]:
        """Tags of the registered version: the data profile (JSON), the fallback (when one) and the extras."""
        out = dict(self.tags)
        if self.profile is not None:
            out["data_profile"] = json.dumps(self.profile, separators=(",", ":"))
        if self.fallback:
            out["fallback"] = self.fallback
        return out


@dataclass(frozen=True)
class PromotionPolicy:
    """The guard's settings (``[guard]`` in the configuration) and the person's override."""

    accept_data_change: bool = False
    max_loss_share: float = 0.5
    date_tolerance_days: int = 31
    max_base_rate_change: float = 0.10
    resamples: int = 200
    level: float = 0.90
    seed: int = 0

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, accept_data_change: bool = False
                      ) -> "PromotionPolicy":
        g = (settings or get_settings()).guard
        return cls(accept_data_change, g.max_loss_share, g.date_tolerance_days, g.max_base_rate_change,
                   g.bootstrap_resamples, g.level, g.seed)

    def data_changes(self, before: dict | None, after: dict | None) -> list[DataChange]:
        """What changed from the champion's profile ``before`` to ``after`` that blocks a promotion (none when
        either is unknown: versions registered before profiles have none)."""
        if not before or not after:
            return []
        return data_changes(before, after, max_loss_share=self.max_loss_share,
                            date_tolerance_days=self.date_tolerance_days,
                            max_base_rate_change=self.max_base_rate_change)

    def gain(self, comparison: Comparison, theirs: np.ndarray) -> PairedGain:
        """The candidate's gain over the model with outputs ``theirs`` on the candidate's validation rows."""
        m = comparison.metric
        return paired_gain(m.resample(comparison.outputs), m.resample(theirs), comparison.clusters,
                           higher_is_better=comparison.guard.higher_is_better, resamples=self.resamples,
                           seed=self.seed, level=self.level)


def _interval(g: PairedGain) -> str:
    if g.low is None:
        return "interval undefined (too few resamples with both outcomes)"
    return f"{g.level:.0%} interval [{g.low:+.5f}, {g.high:+.5f}]"


def decide(policy: PromotionPolicy, comparison: Comparison, champion: store.ChampionRef | None) -> store.Verdict:
    """The guard's verdict on ``comparison`` given the current ``champion`` (None: there is none); see the
    module docstring for the rules. Raises when the champion cannot be evaluated on these rows (the store
    keeps it), unless the person accepted a data change, in which case the challenger is promoted."""
    c, m = comparison, comparison.metric
    label, n = c.label, c.guard.n_rows
    checks: dict = {"metric": c.guard.metric, "value": c.guard.value, "higher_is_better": c.guard.higher_is_better,
                    "rows": n, "baselines": {}}
    for name, out in c.baselines.items():
        g = policy.gain(c, out)
        value = float(m.exact(out))
        checks["baselines"][name] = {"value": value, **g.to_dict()}
        if g.worse:
            return store.Verdict(False, f"refused: validation {label} {c.guard.value:.5f} is worse than the {name} "
                                        f"baseline's {value:.5f} on the same {n} rows (gain {g.gain:+.5f}, "
                                        f"{_interval(g)})", "refused", checks=checks)
    if champion is None:
        return store.Verdict(True, f"no champion yet; validation {label} {c.guard.value:.5f} on {n} rows, not "
                                   "worse than its baselines", "promoted", checks=checks)
    tags: dict = {}
    changes = policy.data_changes(champion.profile, c.profile)
    checks["data_changes"] = [vars(x) for x in changes]
    if changes and not policy.accept_data_change:
        return store.Verdict(False, f"blocked: the data changed since champion v{champion.version} was trained: "
                                    f"{describe_changes(changes)}; the champion stays (pass --accept-data-change "
                                    "to promote anyway)", "blocked", checks=checks)
    if changes:
        tags["accept_data_change"] = describe_changes(changes)[:5000]
    try:
        theirs = m.outputs(champion.load())
    except Exception as e:  # noqa: BLE001 - the champion may need columns the changed data no longer has
        if not changes:
            raise
        return store.Verdict(True, f"champion v{champion.version} could not be evaluated on the changed data "
                                   f"({e}); data change accepted: promoted", "promoted", tags, checks)
    g = policy.gain(c, theirs)
    value = float(m.exact(theirs))
    checks["champion"] = {"version": champion.version, "value": value, **g.to_dict()}
    verdict = "promoted" if g.better else "kept"
    why = (f"validation {label} {c.guard.value:.5f} vs champion {value:.5f} on {n} rows (v{champion.version}): "
           f"gain {g.gain:+.5f}, {_interval(g)}; " +
           ("promoted: the whole interval lies above 0" if g.better
            else "champion kept: a challenger must win by a margin its interval supports"))
    if tags:
        why += "; data change accepted: " + tags["accept_data_change"]
    return store.Verdict(g.better, why, verdict, tags, checks)


def register_candidate(family: Family, model_uri: str, run_id: str, comparison: Comparison, *,
                       policy: PromotionPolicy | None = None, register: bool = True,
                       note: str = "") -> store.Registration:
    """Register ``model_uri`` as the family's new version under the guard (``champion`` moves only when
    :func:`decide` says so); with ``register=False`` nothing is registered and the run is only reported."""
    if not register:
        return store.Registration(run_id, None, None, "not registered")
    pol = policy or PromotionPolicy.from_settings()

    def verdict(champion):
        v = decide(pol, comparison, champion)
        return store.Verdict(v.promote, v.why + note, v.decision, v.tags, v.checks) if note else v

    return store.register_with_guard(family.name, model_uri, run_id, verdict, tags=comparison.version_tags(),
                                     summary=version_summary(family, comparison, store.run_metrics(run_id)))


def version_summary(family: Family, comparison: Comparison, run_metrics: dict[str, float]) -> str:
    """What a registered version's description says before the guard's decision: the data it was trained on
    (as-of, data hash, rows per table, label base rate), its validation metrics (the family's, as its run
    logged them) and the guard metric with the number of validation rows."""
    tags, prof = comparison.tags, comparison.profile or {}
    lines = [f"{family.name} model"
             + (f" trained on the data as of {tags['as_of']}" if tags.get("as_of") else "")
             + (f" (data hash `{tags['data_hash']}`)" if tags.get("data_hash") else "") + "."]
    rows = ", ".join(f"{name} {t['rows']:,}" for name, t in (prof.get("tables") or {}).items()
                     if isinstance(t, dict) and t.get("rows"))
    if rows:
        lines.append(f"Rows per table: {rows}.")
    label = prof.get("label") or {}
    if label.get("decisions"):
        lines.append(f"Renewal decisions {label['decisions']:,}, churns {label.get('churns', 0):,} "
                     f"(base rate {label.get('base_rate')}).")
    if comparison.fallback:
        lines.append(f"Small-book fallback: {comparison.fallback}.")
    shown = {k: run_metrics[k] for k in family.metrics if k in run_metrics}
    if shown:
        lines.append("Validation metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()) + ".")
    g = comparison.guard
    lines.append(f"Guard metric: {comparison.label} {g.value:.5f} on {g.n_rows:,} validation rows "
                 f"({'higher' if g.higher_is_better else 'lower'} is better).")
    return "\n\n".join(lines)


def log_and_register(family: Family, estimator, example_rows: pd.DataFrame, run_id: str, comparison: Comparison,
                     *, policy: PromotionPolicy | None = None, register: bool = True) -> store.Registration:
    """The last step of a training run: log ``estimator`` as the run's pyfunc model (its signature from
    ``example_rows`` and the family's pyfunc answer to them), then :func:`register_candidate` it."""
    info = store.log_pyfunc(EstimatorModel(estimator, family.name), example_rows,
                            family.pyfunc(estimator, example_rows))
    return register_candidate(family, info.model_uri, run_id, comparison, policy=policy, register=register)

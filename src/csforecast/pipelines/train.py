"""`csforecast train`: validate, build the shared snapshots once, train every model family that exists.

``train_families`` returns typed :class:`TrainingResult` objects (the estimator, the validation rows, the
guard score ...), or a :class:`Skipped` for a family that was not trained; ``train_all`` is the CLI's JSON-able
view of them (the dict ``csforecast train --json`` prints per family).

Decide, then commit: before anything is fitted, the profile of the data is compared with the profile each
family's champion was trained on (``PromotionPolicy.data_changes``, docs/operations.md). A family whose data
broke (a table emptied, more than half its rows or accounts lost, a shrunk date range, a moved base rate) is not
trained at all - nothing is logged or registered - unless the person accepted the change
(``accept_data_change``). A registry that cannot be read stops the whole command (``RegistryError``): a
transient error is never taken for "no champion yet". A family whose data cannot train it (a small book's
survival, health without any of its tables) is skipped with the reason.

The oracle (the simulator's truth) is passed in by the caller that owns simulated data (the CLI, with
``simulate.truth.oracle_for``); nothing in training opens truth/.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from csforecast.data.sources import Source
from csforecast.data.profile import describe_changes
from csforecast.errors import InputError, TrainingDataError
from csforecast.pipelines import blend, churn, health, survival
from csforecast.pipelines.champion import PromotionPolicy
from csforecast.pipelines.context import TrainingContext
from csforecast.pipelines.result import TrainingResult
from csforecast.scoring import families as family_registry
from csforecast.simulate.truth import Truth
from csforecast.tracking import store

__all__ = ["TRAINERS", "Skipped", "available_families", "train_families", "train_all"]


@dataclass(frozen=True)
class Skipped:
    """A family that was not trained: ``decision`` "blocked" (its champion's data changed; the champion stays)
    or "skipped" (the data cannot train it), the reason in words, and for a block the champion and the
    changes (``data.profile.DataChange`` as dicts)."""

    family: str
    decision: str
    reason: str
    champion_version: str | None = None
    changes: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {"metrics": None, "oracle": None, "detail": {"changes": list(self.changes)}, "run_id": None,
                "version": None, "alias": None, "guard": self.reason, "decision": self.decision, "fallback": None,
                "champion_version": self.champion_version}

# family -> its trainer: (ctx, estimators trained so far) -> TrainingResult. Survival compares its
# renewal-date probabilities with the churn model trained in the same call; the blend combines the churn
# champion (after this call's churn training) with the CSM calls.
TRAINERS: dict[str, Callable[[TrainingContext, dict], TrainingResult]] = {
    "churn": lambda ctx, done: churn.train_churn(ctx),
    "survival": lambda ctx, done: survival.train_survival(ctx, churn_estimator=done.get("churn")),
    "health": lambda ctx, done: health.train_health(ctx),
    "blend": lambda ctx, done: blend.train_blend(ctx, churn_estimator=done.get("churn")),
}


def available_families() -> list[str]:
    """The registered families (``scoring.families``) that have a trainer, in training order."""
    return [name for name in family_registry.names() if name in TRAINERS]


def blocked_by_data_change(ctx: TrainingContext, family: str) -> Skipped | None:
    """The family's block when its champion was trained on data this source broke (None: not blocked, or
    the person accepted the change). ``RegistryError`` when the champion cannot be read."""
    champion = store.read_champion(family)
    if champion is None:
        return None
    changes = ctx.policy.data_changes(champion.profile, ctx.profile)
    if not changes or ctx.policy.accept_data_change:
        return None
    return Skipped(family, "blocked", f"blocked: the data changed since champion v{champion.version} was trained: "
                                      f"{describe_changes(changes)}; not trained, the champion stays (pass "
                                      "--accept-data-change to train and promote anyway)",
                   champion.version, [vars(c) for c in changes])


def train_families(source: Source, as_of: date | None = None, families: list[str] | None = None,
                   progress: Callable[[str], None] | None = None, *, oracle: Truth | None = None,
                   policy: PromotionPolicy | None = None) -> dict[str, TrainingResult | Skipped]:
    """Train ``families`` (default: all) on ``source`` as of ``as_of``, sharing one TrainingContext; the
    oracle (None for real data) is used for evaluation only; ``policy``: the promotion guard's settings and
    the person's override (default: the settings, no override). InputError for an unknown family name."""
    wanted = list(families or available_families())
    unknown = [f for f in wanted if f not in TRAINERS]
    if unknown:
        raise InputError(f"unknown model famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
                         f"known: {', '.join(available_families())}")
    ctx = TrainingContext.build(source, as_of, oracle=oracle, policy=policy)
    tick = progress or (lambda *_: None)
    tick("profiling the data and comparing it with the champions'")
    blocked = {fam: b for fam in wanted if (b := blocked_by_data_change(ctx, fam)) is not None}
    results: dict[str, TrainingResult | Skipped] = {}
    if len(blocked) < len(wanted):
        tick("building point-in-time snapshots")
        _ = ctx.snapshots
    for fam in wanted:
        if fam in blocked:
            results[fam] = blocked[fam]
            continue
        tick(f"training {fam}")
        done = {k: r.estimator for k, r in results.items() if isinstance(r, TrainingResult)}
        try:
            results[fam] = TRAINERS[fam](ctx, done)
        except TrainingDataError as e:
            results[fam] = Skipped(fam, "skipped", str(e))
    return results


def train_all(source: Source, as_of: date | None = None, families: list[str] | None = None,
              progress: Callable[[str], None] | None = None, *, oracle=None,
              policy: PromotionPolicy | None = None) -> dict:
    """``csforecast train``: the JSON-able result per family (:meth:`TrainingResult.to_json`).

    ``oracle``: the simulator's truth (a Truth), reported beside every metric; None for real data."""
    results = train_families(source, as_of, families, progress, oracle=oracle, policy=policy)
    return {fam: r.to_json() for fam, r in results.items()}

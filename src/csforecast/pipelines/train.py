"""`csforecast train`: validate, build the shared snapshots once, train every model family that exists."""
from __future__ import annotations

from datetime import date
from importlib import import_module

from csforecast.data.sources import Source
from csforecast.pipelines.context import TrainingContext

# family -> (module, training function). A family appears here once its pipeline lands.
FAMILIES: dict[str, tuple[str, str]] = {
    "churn": ("csforecast.pipelines.churn", "train_churn"),
    "survival": ("csforecast.pipelines.survival", "train_survival"),
    "health": ("csforecast.pipelines.health", "train_health"),
}


def available_families() -> list[str]:
    out = []
    for fam, (mod, fn) in FAMILIES.items():
        try:
            getattr(import_module(mod), fn)
        except (ImportError, AttributeError):
            continue
        out.append(fam)
    return out


def train_all(source: Source, as_of: date | None = None, families: list[str] | None = None,
              progress=None) -> dict:
    ctx = TrainingContext.build(source, as_of)
    tick = progress or (lambda *_: None)
    tick("building point-in-time snapshots")
    _ = ctx.snapshots
    results, estimators = {}, {}
    for fam in families or available_families():
        tick(f"training {fam}")
        mod, fn = FAMILIES[fam]
        kwargs = {"churn_estimator": estimators["churn"]} if fam == "survival" and "churn" in estimators else {}
        res = getattr(import_module(mod), fn)(ctx, **kwargs)
        estimators[fam] = res.pop("_estimator", None)
        results[fam] = res
    return results

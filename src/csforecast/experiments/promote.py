"""Promote an experiment's variant: register its logged model under the champion/challenger guard, judged
on the run's own validation rows rebuilt from the same data (checked by data hash and row fingerprint)."""
from __future__ import annotations

from typing import Callable

import pandas as pd
from mlflow.exceptions import MlflowException

from csforecast.data.sources import Source
from csforecast.errors import InputError
from csforecast.experiments.report import _r
from csforecast.experiments.variants import ADAPTERS, rows_fingerprint, single_blas_thread
from csforecast.pipelines import churn, health, survival
from csforecast.pipelines.champion import register_candidate
from csforecast.pipelines.context import TrainingContext
from csforecast.scoring import families
from csforecast.tracking import runs as tracking_ext
from csforecast.tracking import store

__all__ = ["PromoteError", "promotion_info", "promote"]

Progress = Callable[[str], None]
# family -> its trainer's case to the promotion guard (the same rule as `csforecast train`)
COMPARISONS = {"churn": churn.comparison, "health": health.comparison, "survival": survival.comparison}


class PromoteError(InputError, RuntimeError):
    """The run cannot be promoted (unknown run, other data, no model, already registered)."""


def promotion_info(run_id: str) -> dict:
    """What promoting `run_id` needs: family, as_of, validation months, data hash and the data location
    recorded by its experiment's parent run (None when the run is not part of an experiment)."""
    try:
        run = tracking_ext.get_run(run_id)
    except MlflowException as e:
        raise PromoteError(f"no MLflow run {run_id}: {e}") from e
    tags, params = run.data.tags, run.data.params
    family = tags.get("family")
    if family == "forecast":
        raise PromoteError("forecast variants are back-test methods, not models: nothing to register")
    if family not in ADAPTERS:
        raise PromoteError(f"run {run_id} is not a model run of a known family (family tag {family!r})")
    if tags.get("kind") == "experiment":
        raise PromoteError(f"run {run_id} is an experiment's parent run; promote one of its variants (child runs)")
    as_of = params.get("as_of") or tags.get("as_of")
    vs = params.get("validation_start")
    if not as_of or not vs:
        raise PromoteError(f"run {run_id} has no as_of / validation_start params")
    a, v = pd.Timestamp(as_of), pd.Timestamp(vs)
    months = (a.year - v.year) * 12 + a.month - v.month
    parent_id = tags.get(tracking_ext.PARENT_TAG) or tags.get("experiment_parent_run_id")
    data = None
    if parent_id:
        try:
            pr = tracking_ext.get_run(parent_id)
            data = pr.data.params.get("data")
        except MlflowException:
            parent_id = None
    return {"run_id": run_id, "family": family, "as_of": a.date(), "validation_start": v.date(),
            "validation_months": months, "data_hash": tags.get("data_hash") or params.get("data_hash"),
            "parent_run_id": parent_id, "data": data, "experiment": tags.get("experiment"),
            "variant": tags.get("variant")}


@single_blas_thread
def promote(run_id: str, source: Source, info: dict | None = None, *, progress: Progress | None = None) -> dict:
    """Register the run's logged model; `champion` moves to it only when the promotion guard says so
    (``pipelines.champion``: baselines, data changes, a margin its interval supports) on the run's validation
    rows (rebuilt from `source` at the run's as_of)."""
    tell = progress or (lambda _m: None)
    info = info or promotion_info(run_id)
    family = info["family"]
    if info["data_hash"] and source.data_hash != info["data_hash"]:
        raise PromoteError(f"the data at {source.location} (hash {source.data_hash}) are not the data run {run_id} "
                           f"was trained on (hash {info['data_hash']}): its validation rows cannot be rebuilt")
    existing = [mv for mv in store.model_versions(family) if mv["run_id"] == run_id]
    if existing:
        mv = existing[0]
        raise PromoteError(f"run {run_id} is already registered as {store.model_name(family)} version "
                           f"{mv['version']} (aliases: {', '.join(mv['aliases']) or 'none'})")
    adapter = ADAPTERS[family]
    tell("rebuilding the run's validation rows")
    ctx = TrainingContext.build(source, info["as_of"], info["validation_months"])
    if str(ctx.validation_start) != str(info["validation_start"]):
        raise PromoteError(f"rebuilt validation start {ctx.validation_start} differs from the run's "
                           f"{info['validation_start']}")
    val = adapter.validation_set(ctx)
    fp = rows_fingerprint(val.rows)
    if info.get("parent_run_id"):
        try:
            stored = tracking_ext.load_run_json(info["parent_run_id"], "validation_rows.json")
            if stored.get("hash") != fp["hash"]:
                raise PromoteError("the rebuilt validation rows differ from the ones the experiment compared "
                                   f"({fp['n']} vs {stored.get('n')} rows)")
        except PromoteError:
            raise
        except Exception:  # noqa: BLE001 - older parents without the artifact: the hash check above suffices
            pass
    uri = tracking_ext.logged_model_uri(run_id)
    tell("evaluating the variant and the champion")
    try:
        est = store.load_estimator(uri)
    except Exception as e:  # noqa: BLE001
        raise PromoteError(f"run {run_id} has no loadable model at {uri}: {e}") from e
    fam = families.get(family)
    case = COMPARISONS[family](ctx, est, val)
    reg = register_candidate(fam, uri, run_id, case, note=" (promoted from experiment run)")
    champ = (reg.checks or {}).get("champion") or {}
    scores = {"candidate": _r(case.guard.value), "champion": _r(champ.get("value")), "metric": fam.guard_metric,
              "higher_is_better": fam.guard_higher_is_better, "validation_rows": fp["n"],
              "gain_ci": champ.get("ci"), "decision": reg.decision}
    return {"run_id": run_id, "family": family, "experiment": info.get("experiment"), "variant": info.get("variant"),
            "model_uri": uri, "version": reg.version, "alias": reg.alias, "promoted": reg.alias == store.CHAMPION,
            "guard": reg.guard, "scores": scores, "as_of": str(info["as_of"]),
            "validation_start": str(ctx.validation_start)}

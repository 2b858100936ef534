"""The served model set: the champion (or pinned) version of every family, read from the MLflow registry.

`load_models_from_registry` tells an unreachable registry (`RegistryUnavailable`: the caller falls back to
the model cache) apart from a reachable one with nothing valid to serve (`LoadError`). `family_info` is the
registry's view of one served version (run, aliases, metrics, all versions): a snapshot is taken at load,
and `/v1/models` asks again live.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from csforecast.api.errors import LoadError, RegistryUnavailable
from csforecast.api.families import FAMILIES, model_inputs
from csforecast.jsonsafe import error_text

log = logging.getLogger("csforecast.api")


@dataclass(frozen=True, eq=False)
class ModelSet:
    """The estimators served together, their versions and where they came from; never changed after load."""

    estimators: dict[str, Any]
    versions: dict[str, str]
    source: str                      # "registry" | "cache"
    loaded_at: datetime
    info: dict[str, dict]            # family -> {run_id, aliases, metrics, versions, pinned, inputs}: snapshot at load


def family_info(family: str, version: str, pinned: bool) -> dict:
    """{run_id, aliases, metrics, versions, pinned} of one registered version, as the registry says now.

    Best effort: the details decorate a model that already loaded, so a registry error is logged and the
    fields stay empty (never raised).
    """
    from csforecast.tracking import store

    info: dict = {"run_id": None, "aliases": [], "metrics": {}, "versions": [], "pinned": pinned}
    try:
        versions = store.model_versions(family)
        info["versions"] = [{k: v.get(k) for k in ("version", "run_id", "aliases", *store.VERSION_TAGS)}
                            for v in versions]
        mine = next((v for v in versions if str(v["version"]) == str(version)), None)
        if mine:
            info["run_id"], info["aliases"] = mine["run_id"], list(mine["aliases"])
            if mine["run_id"]:
                info["metrics"] = {k: float(v) for k, v in store.run_metrics(mine["run_id"]).items()
                                   if isinstance(v, (int, float)) and math.isfinite(v)}
    except Exception as e:  # noqa: BLE001 - the info is decoration; the estimator itself loaded
        log.warning("could not read registry details of %s v%s: %s", family, version, error_text(e))
    return info


def load_models_from_registry(settings) -> ModelSet:
    """The champion (or pinned) version of every registered family. Raises RegistryUnavailable when the
    registry cannot be read, LoadError when it can but there is nothing (valid) to serve."""
    from mlflow.exceptions import MlflowException

    from csforecast.scoring.batch import Champions
    from csforecast.tracking import store

    pinned = {k: str(v) for k, v in (settings.serve.pinned_versions or {}).items()}
    unknown = sorted(set(pinned) - set(FAMILIES))
    if unknown:
        raise LoadError(f"serve.pinned_versions names unknown model families {unknown}; known: {list(FAMILIES)}")
    uri = settings.tracking_uri
    try:
        # store.champion_version answers None when the registry cannot be reached; probe first so an
        # unreachable registry is told apart from one without champions.
        store.configure(settings).search_registered_models(max_results=1)
    except Exception as e:  # noqa: BLE001 - connection refused, broken database, …
        raise RegistryUnavailable(f"MLflow registry at {uri} is not reachable: {error_text(e)}") from e
    try:
        champs = Champions.load(pinned)
    except MlflowException as e:
        code = getattr(e, "error_code", "")
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise LoadError(f"cannot load the models to serve (pinned {pinned or 'none'}): {error_text(e)}") from e
        raise RegistryUnavailable(f"MLflow registry at {uri} is not usable: {error_text(e)}") from e
    except Exception as e:  # noqa: BLE001 - connection refused, broken database, missing artifacts …
        raise RegistryUnavailable(f"MLflow registry at {uri} is not usable: {error_text(e)}") from e
    if "churn" not in champs.estimators:
        raise LoadError(f"no churn champion in the MLflow registry at {uri}: run `csforecast train --data …` "
                        "first (or pin a version in serve.pinned_versions)")
    info = {fam: family_info(fam, v, fam in pinned) for fam, v in champs.versions.items()}
    for fam, est in champs.estimators.items():
        info[fam]["inputs"] = model_inputs(est)
    return ModelSet(dict(champs.estimators), dict(champs.versions), "registry", datetime.now(timezone.utc), info)

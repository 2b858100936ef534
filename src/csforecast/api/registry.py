"""The served model set: the champion (or pinned) version of every family, read from the MLflow registry.

`served_versions` reads which version of each family to serve (cheap: aliases only);
`load_models_from_registry` loads those that changed. It tells an unreachable registry
(`RegistryUnavailable`: the caller falls back to the model cache) apart from a reachable one with nothing
valid to serve (`LoadError`); a registry file that is missing, or a registry without the champion it
served before, is unreachable, not empty. `family_info` is the
registry's view of one served version (run, aliases, metrics, all versions): a snapshot is taken at load,
and `/v1/models` asks again live.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
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


def registry_client(settings=None):
    """The MLflow client of the registry (``store.configure``), but RegistryUnavailable instead of a new,
    empty sqlite registry where the file has gone (MLflow creates one as soon as a client is made)."""
    from csforecast.config import get_settings
    from csforecast.tracking import store

    settings = settings or get_settings()
    db = registry_file(settings.tracking_uri)
    if db is not None and not db.exists():
        raise RegistryUnavailable(f"the MLflow registry file {db} does not exist (moved or deleted?)")
    return store.configure(settings)


def family_info(family: str, version: str, pinned: bool) -> dict:
    """{run_id, aliases, metrics, versions, pinned} of one registered version, as the registry says now.

    Best effort: the details decorate a model that already loaded, so a registry error is logged and the
    fields stay empty (never raised).
    """
    from csforecast.tracking import store

    info: dict = {"run_id": None, "aliases": [], "metrics": {}, "versions": [], "pinned": pinned}
    try:
        registry_client()
        versions = store.model_versions(family)
        info["versions"] = [{k: v.get(k) for k in ("version", "run_id", "aliases", *store.VERSION_TAGS, "orphan")}
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


def registry_file(uri: str) -> Path | None:
    """The file of a local sqlite registry URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def served_versions(settings) -> dict[str, str]:
    """{family: version} to serve now: the pinned version, else the `champion` alias (families without one
    are left out). Cheap: reads aliases, loads no model.

    Raises RegistryUnavailable when the registry cannot be read, including a local sqlite registry file
    that does not exist (moved or deleted: the server never creates an empty one in its place), and
    LoadError when serve.pinned_versions names an unknown family.
    """
    from csforecast.tracking import store

    pinned = {k: str(v) for k, v in (settings.serve.pinned_versions or {}).items()}
    unknown = sorted(set(pinned) - set(FAMILIES))
    if unknown:
        raise LoadError(f"serve.pinned_versions names unknown model families {unknown}; known: {list(FAMILIES)}")
    uri = settings.tracking_uri
    try:
        # probe first: an unreachable registry must not read as one without champions
        registry_client(settings).search_registered_models(max_results=1)
        versions = {}
        for fam in FAMILIES:
            if fam in pinned:
                versions[fam] = pinned[fam]
                continue
            mv = store.champion_version(fam)
            if mv is not None:
                versions[fam] = str(mv.version)
    except RegistryUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - connection refused, broken database, …
        raise RegistryUnavailable(f"MLflow registry at {uri} is not reachable: {error_text(e)}") from e
    return versions


def load_models_from_registry(settings, previous: ModelSet | None = None,
                              served_before: dict[str, str] | None = None) -> ModelSet:
    """The champion (or pinned) version of every registered family.

    Estimators of ``previous`` (a model set loaded from the registry) whose version is still the one to
    serve are reused as they are; only the others are loaded. ``served_before``: the versions this
    registry served before (the model cache's), which make a registry without a churn champion read as
    replaced or emptied, i.e. unavailable, rather than as "nothing trained yet".

    Raises RegistryUnavailable when the registry cannot be read (the caller falls back to the model cache),
    LoadError when it can but there is nothing (valid) to serve.
    """
    from mlflow.exceptions import MlflowException

    from csforecast.tracking import store

    uri = settings.tracking_uri
    versions = served_versions(settings)
    if "churn" not in versions:
        if served_before and served_before.get("churn"):
            raise RegistryUnavailable(f"the MLflow registry at {uri} has no churn champion, but it served churn "
                                      f"v{served_before['churn']} before: it looks replaced or emptied")
        raise LoadError(f"no churn champion in the MLflow registry at {uri}: run `csforecast train --data …` "
                        "first (or pin a version in serve.pinned_versions)")
    reuse = previous if previous is not None and previous.source == "registry" else None
    pinned = settings.serve.pinned_versions or {}
    estimators, info = {}, {}
    for fam, v in versions.items():
        if reuse is not None and reuse.versions.get(fam) == v and fam in reuse.estimators:
            estimators[fam], info[fam] = reuse.estimators[fam], reuse.info.get(fam, {})
            continue
        try:
            estimators[fam] = store.load_estimator(f"models:/{store.model_name(fam)}/{v}")
        except MlflowException as e:
            if getattr(e, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise LoadError(f"cannot load {fam} v{v} to serve (pinned {dict(pinned) or 'none'}): "
                                f"{error_text(e)}") from e
            raise RegistryUnavailable(f"MLflow registry at {uri} is not usable: {error_text(e)}") from e
        except Exception as e:  # noqa: BLE001 - missing artifacts, unreadable pickle, …
            raise RegistryUnavailable(f"MLflow registry at {uri} is not usable: {error_text(e)}") from e
        info[fam] = {**family_info(fam, v, fam in pinned), "inputs": model_inputs(estimators[fam])}
    return ModelSet(estimators, versions, "registry", datetime.now(timezone.utc), info)

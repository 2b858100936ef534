"""MLflow: the only module that talks to it. Tracking URI, experiments, runs, registry and aliases.

Conventions: one experiment per model family (`csforecast-<family>`), one registered model per family
(`csforecast-<family>`). A new version gets alias `challenger`; it becomes `champion` only if it beats the
current champion on the same validation rows, or there is none. Aliases move only after everything else
in the run succeeded.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from csforecast.config import Settings, get_settings  # noqa: E402
from csforecast.tracking import orphans  # noqa: E402

CHAMPION, CHALLENGER = "champion", "challenger"
_REQS = ("numpy", "pandas", "scikit-learn", "lightgbm", "lifelines", "statsmodels", "scipy", "cloudpickle")


def model_name(family: str) -> str:
    return f"csforecast-{family}"


def configure(settings: Settings | None = None) -> MlflowClient:
    s = settings or get_settings()
    uri = s.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def experiment_id(family: str, settings: Settings | None = None) -> str:
    s = settings or get_settings()
    name = model_name(family)
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = Path(s.artifact_root) / name
    root.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=root.resolve().as_uri())


def pip_requirements() -> list[str]:
    reqs = []
    for pkg in _REQS:
        with contextlib.suppress(PackageNotFoundError):
            reqs.append(f"{pkg}=={version(pkg)}")
    return reqs


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class Registration:
    run_id: str
    version: str | None
    alias: str | None         # "champion" or "challenger"
    guard: str                # why the champion moved or did not


def log_figure(fig, name: str) -> None:
    mlflow.log_figure(fig, name)


def log_dict(obj: Any, name: str) -> None:
    mlflow.log_dict(obj, name)


def log_text(text: str, name: str) -> None:
    mlflow.log_text(text, name)


def log_metrics(metrics: dict[str, Any], prefix: str = "") -> None:
    clean = {f"{prefix}{k}": float(v) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
    if clean:
        mlflow.log_metrics(clean)


def log_params(params: dict[str, Any]) -> None:
    mlflow.log_params({k: str(v)[:500] for k, v in params.items()})


@contextlib.contextmanager
def start_run(family: str, run_name: str | None = None, nested: bool = False, tags: dict | None = None):
    client = configure()
    if mlflow.get_tracking_uri() not in _orphans_checked:   # once per store: runs a killed process left RUNNING
        _orphans_checked.add(mlflow.get_tracking_uri())     # become FAILED before this process adds its own
        orphans.fail_orphan_runs(client)
    exp = experiment_id(family)
    with mlflow.start_run(experiment_id=exp, run_name=run_name, nested=nested,
                          tags={"git_commit": git_commit(), "family": family, **orphans.owner_tags(),
                                **(tags or {})}) as run:
        yield run


_orphans_checked: set[str] = set()


def log_pyfunc(python_model, signature_input, signature_output=None, name: str = "model"):
    from mlflow.models import infer_signature

    sig = infer_signature(signature_input, signature_output)
    return mlflow.pyfunc.log_model(name=name, python_model=python_model, signature=sig,
                                   pip_requirements=pip_requirements())


def register_with_guard(family: str, model_uri: str, run_id: str,
                        beats_champion: Callable[[Any], tuple[bool, str]]) -> Registration:
    """Register a new version as `challenger`; move `champion` to it if `beats_champion(champion_model)`
    says so (it gets the loaded champion estimator) or when there is no champion."""
    client = configure()
    name = model_name(family)
    with contextlib.suppress(MlflowException):
        client.create_registered_model(name)
    current = champion_version(family)
    if current is None:
        better, why = True, "no champion yet"
    else:
        try:
            better, why = beats_champion(load_estimator(f"models:/{name}/{current.version}"))
        except Exception as e:  # noqa: BLE001 - an incomparable champion is reported, never silently replaced
            better, why = False, f"champion v{current.version} could not be evaluated on this data ({e}); kept"
    mv = mlflow.register_model(model_uri, name, tags={"run_id": run_id})
    client.set_registered_model_alias(name, CHALLENGER, mv.version)
    alias = CHALLENGER
    if better:
        client.set_registered_model_alias(name, CHAMPION, mv.version)
        alias = CHAMPION
    client.set_model_version_tag(name, mv.version, "guard", why[:500])
    return Registration(run_id, str(mv.version), alias, why)


def champion_version(family: str, alias: str = CHAMPION):
    client = configure()
    try:
        return client.get_model_version_by_alias(model_name(family), alias)
    except MlflowException:
        return None


def load_estimator(model_uri: str):
    """The estimator object inside one of our pyfunc models."""
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().estimator


def model_versions(family: str) -> list[dict]:
    client = configure()
    name = model_name(family)
    try:
        rm = client.get_registered_model(name)
    except MlflowException:
        return []
    aliases = rm.aliases or {}
    out = []
    for mv in client.search_model_versions(f"name='{name}'"):
        out.append({"family": family, "name": name, "version": str(mv.version), "run_id": mv.run_id,
                    "aliases": [a for a, v in aliases.items() if str(v) == str(mv.version)],
                    "guard": (mv.tags or {}).get("guard"), "orphan": bool((mv.tags or {}).get(orphans.ORPHAN_TAG))})
    return sorted(out, key=lambda d: int(d["version"]), reverse=True)


def run_metrics(run_id: str) -> dict[str, float]:
    return dict(configure().get_run(run_id).data.metrics)


def download_artifacts(run_id: str, path: str, dst: str | None = None) -> str:
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path,
                                               dst_path=dst or tempfile.mkdtemp())

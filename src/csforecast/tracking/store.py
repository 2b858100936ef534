"""MLflow: the only module that talks to it. Tracking URI, experiments, runs, registry and aliases.

Conventions: one experiment per model family (`csforecast-<family>`), one registered model per family
(`csforecast-<family>`). A new version gets alias `challenger`; it becomes `champion` only when the promotion
guard says so (``pipelines.champion``: it beats the current champion on the same validation rows by a margin
its interval supports, or there is none; docs/operations.md). Aliases move only after everything else in the
run succeeded, `champion` last.

Reading the champion tells "there is none" (the registered model or the alias does not exist: None) apart from
a registry that cannot be read (:class:`RegistryError`): a transient error never passes for "no champion yet".
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from csforecast.config import Settings, get_settings  # noqa: E402
from csforecast.errors import UnavailableError  # noqa: E402
from csforecast.tracking import orphans  # noqa: E402

CHAMPION, CHALLENGER = "champion", "challenger"
NOTE_TAG = "mlflow.note.content"     # the description MLflow's UI shows for a run
DESCRIPTION_MAX = 5000               # MLflow's SQL store keeps at most 5,000 characters of a version description
# model-version tags written at registration (docs/operations.md); JSON values are parsed by model_versions
VERSION_TAGS = ("guard", "decision", "data_hash", "data_profile", "fallback", "accept_data_change",
                "dropped_components")
_JSON_TAGS = ("data_profile", "dropped_components")


class RegistryError(UnavailableError):
    """The MLflow registry could not be read or written; nothing was registered and no alias moved."""


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
    decision: str = "not registered"   # "promoted", "kept", "refused" or "blocked" (docs/operations.md)
    checks: dict = field(default_factory=dict)   # the numbers behind the decision


@dataclass(frozen=True)
class Verdict:
    """What the promotion guard decided for a new version: move `champion` to it or not, the sentence recorded
    as its `guard` tag, the decision's name, extra version tags and the numbers behind it."""

    promote: bool
    why: str
    decision: str
    tags: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ChampionRef:
    """The current champion of a family as the registry lists it (the estimator is loaded on demand)."""

    family: str
    version: str
    run_id: str | None
    tags: dict

    @property
    def model_uri(self) -> str:
        return f"models:/{model_name(self.family)}/{self.version}"

    def load(self):
        return load_estimator(self.model_uri)

    @property
    def profile(self) -> dict | None:
        """The data profile the champion was trained on (None for versions registered before profiles)."""
        return _parse_tag(self.tags.get("data_profile"))


def _parse_tag(value):
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _registry_error(family: str, what: str, e: Exception) -> RegistryError:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    return RegistryError(f"could not {what} {model_name(family)} in the MLflow registry at {get_settings().tracking_uri} "
                         f"({first}); nothing was registered and no alias moved: try again")

def log_figure(fig, name: str) -> None:
    mlflow.log_figure(fig, name)


def log_dict(obj: Any, name: str) -> None:
    mlflow.log_dict(obj, name)


def log_text(text: str, name: str) -> None:
    mlflow.log_text(text, name)


def log_table(frame, name: str) -> None:
    """Log a DataFrame as a Parquet artifact ``name`` of the active run."""
    with tempfile.TemporaryDirectory(prefix="csforecast-artifact-") as tmp:
        path = Path(tmp) / name
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path))


def model_version_run_id(family: str, version: str) -> str | None:
    """The run that logged version ``version`` of the family's registered model (None when unknown)."""
    try:
        return configure().get_model_version(model_name(family), str(version)).run_id
    except MlflowException:
        return None


def metric_name(name: str) -> str:
    """``name`` as MLflow accepts it: characters other than word characters, ``/ . - :`` and spaces (e.g. the
    parentheses of a user's segment name "SMB (EU)") become "_"."""
    return re.sub(r"[^/\w.\- :]", "_", str(name))


def log_metrics(metrics: dict[str, Any], prefix: str = "") -> None:
    """The finite numbers of ``metrics``, named ``prefix + key`` (made valid by :func:`metric_name`)."""
    clean = {metric_name(f"{prefix}{k}"): float(v) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
    if clean:
        mlflow.log_metrics(clean)


def log_params(params: dict[str, Any]) -> None:
    mlflow.log_params({k: str(v)[:500] for k, v in params.items()})


def run_name_for(family: str, tags: dict | None) -> str | None:
    """The name of a run that was not given one: its family, as-of date and data hash, e.g.
    ``churn as-of 2026-10-01 data 3f2a9c1e`` (None when the tags carry neither, MLflow then picks one)."""
    t = tags or {}
    if not t.get("as_of") and not t.get("data_hash"):
        return None
    parts = [family]
    if t.get("as_of"):
        parts.append(f"as-of {t['as_of']}")
    if t.get("data_hash"):
        parts.append(f"data {str(t['data_hash'])[:8]}")
    return " ".join(parts)


def run_description(family: str, tags: dict | None) -> str:
    """The run's description (MLflow's ``mlflow.note.content``): what was trained on which data."""
    t = tags or {}
    rows = ", ".join(f"{k.split('.')[1]} {int(v):,}" for k, v in t.items()
                     if k.startswith("profile.") and k.endswith(".rows") and str(v).isdigit() and int(v) > 0)
    text = f"{family} run"
    if t.get("as_of"):
        text += f" on the data as of {t['as_of']} (rows dated before it only)"
    if t.get("data_hash"):
        text += f", data hash {t['data_hash']}"
    text += "."
    if rows:
        text += f" Rows per table: {rows}."
    if t.get("profile.label.base_rate") not in (None, "None"):
        text += f" Churn base rate of the renewal decisions: {t['profile.label.base_rate']}."
    if t.get("fallback"):
        text += f" Small-book fallback: {t['fallback']}."
    return text


@contextlib.contextmanager
def start_run(family: str, run_name: str | None = None, nested: bool = False, tags: dict | None = None):
    """An MLflow run in the family's experiment. Unnamed runs are named by family, as-of date and data hash
    (:func:`run_name_for`) and described (:func:`run_description`) from ``tags``."""
    client = configure()
    if mlflow.get_tracking_uri() not in _orphans_checked:   # once per store: runs a killed process left RUNNING
        _orphans_checked.add(mlflow.get_tracking_uri())     # become FAILED before this process adds its own
        orphans.fail_orphan_runs(client)
    exp = experiment_id(family)
    extra = dict(tags or {})
    if tags and (tags.get("as_of") or tags.get("data_hash")):
        extra.setdefault(NOTE_TAG, run_description(family, tags))
    with mlflow.start_run(experiment_id=exp, run_name=run_name or run_name_for(family, tags), nested=nested,
                          tags={"git_commit": git_commit(), "family": family, **orphans.owner_tags(),
                                **extra}) as run:
        yield run


_orphans_checked: set[str] = set()


def log_pyfunc(python_model, signature_input, signature_output=None, name: str = "model"):
    from mlflow.models import infer_signature

    sig = infer_signature(signature_input, signature_output)
    return mlflow.pyfunc.log_model(name=name, python_model=python_model, signature=sig,
                                   pip_requirements=pip_requirements())


def read_champion(family: str, alias: str = CHAMPION) -> ChampionRef | None:
    """The version holding ``alias``: None when the registered model or the alias does not exist;
    :class:`RegistryError` when the registry cannot be read (never mistaken for "no champion yet")."""
    name = model_name(family)
    try:
        client = configure()   # opening a broken store fails here already
        rm = client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise _registry_error(family, f"read the {alias} of", e) from e
    except Exception as e:  # noqa: BLE001 - connection refused, broken database, …
        raise _registry_error(family, f"read the {alias} of", e) from e
    version = (rm.aliases or {}).get(alias)
    if version is None:
        return None
    try:
        mv = client.get_model_version(name, str(version))
    except Exception as e:  # noqa: BLE001
        raise _registry_error(family, f"read the {alias} of", e) from e
    return ChampionRef(family, str(mv.version), mv.run_id, dict(mv.tags or {}))


def version_description(summary: str, verdict: Verdict, champion: ChampionRef | None) -> str:
    """A registered version's description: ``summary`` (its data and validation metrics, from the caller) and
    why it was or was not promoted, with the alias it gets."""
    if verdict.promote:
        outcome = f"**Promoted: alias `{CHAMPION}`**" + (f" (replaces v{champion.version})" if champion else "")
    else:
        outcome = (f"**Not promoted ({verdict.decision}): alias `{CHALLENGER}`**"
                   + (f"; `{CHAMPION}` stays on v{champion.version}" if champion else ""))
    decision = f"{outcome}. {verdict.why}"[:DESCRIPTION_MAX]
    room = DESCRIPTION_MAX - len(decision) - 2      # the decision is kept whole; the summary gives way
    return (f"{summary.strip()[:room]}\n\n{decision}" if room > 0 and summary.strip() else decision).strip()


def _model_id(model_uri: str) -> str | None:
    """The logged model's id in a ``models:/m-…`` URI (MLflow 3's logged models), else None."""
    rest = model_uri.removeprefix("models:/")
    return rest if rest != model_uri and rest.startswith("m-") and "/" not in rest else None


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create the registered model once: asking first, so a fresh store and an existing model print nothing."""
    try:
        client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name, description=f"csforecast {name.removeprefix('csforecast-')} model: "
                                                          f"`{CHAMPION}` is the served version (docs/operations.md)")


def register_with_guard(family: str, model_uri: str, run_id: str,
                        decide: Callable[[ChampionRef | None], Verdict], *,
                        tags: dict[str, str] | None = None, summary: str = "") -> Registration:
    """Decide, then commit: read the champion (:class:`RegistryError` before anything is written when the
    registry cannot be read), ask ``decide(champion or None)`` for a :class:`Verdict`, then register the version
    with ``tags``, the verdict's tags and a description (``summary`` + why, :func:`version_description`), and give
    it one alias: `champion` when the verdict promotes (moved last), else `challenger`. A version never holds
    both: `challenger` names the latest version that was not promoted, `champion` the served one.

    A champion that cannot be evaluated (``decide`` raises while one exists) is reported and kept."""
    name = model_name(family)
    champion = read_champion(family)
    client = configure()
    try:
        verdict = decide(champion)
    except Exception as e:  # noqa: BLE001 - an incomparable champion is reported, never silently replaced
        if champion is None:
            raise
        verdict = Verdict(False, f"champion v{champion.version} could not be evaluated on this data ({e}); kept",
                          "kept")
    version_tags = {"run_id": run_id, **{k: str(v) for k, v in (tags or {}).items() if v is not None},
                    **{k: str(v) for k, v in verdict.tags.items() if v is not None},
                    "guard": verdict.why[:5000], "decision": verdict.decision}
    try:
        _ensure_registered_model(client, name)
        model_id = _model_id(model_uri)
        mv = client.create_model_version(name, model_uri, run_id=run_id, tags=version_tags, model_id=model_id,
                                         description=version_description(summary, verdict, champion))
        if model_id:   # the logged model links to its version in MLflow's UI (what mlflow.register_model does)
            with contextlib.suppress(MlflowException):
                client.set_logged_model_tags(model_id, {"mlflow.modelVersions": json.dumps(
                    [{"name": name, "version": str(mv.version)}])})
        alias = CHAMPION if verdict.promote else CHALLENGER
        client.set_registered_model_alias(name, alias, mv.version)   # `champion`: the irreversible step, last
    except MlflowException as e:
        raise _registry_error(family, "register a version of", e) from e
    return Registration(run_id, str(mv.version), alias, verdict.why, verdict.decision, dict(verdict.checks))


def champion_version(family: str, alias: str = CHAMPION):
    """The registry's ModelVersion holding ``alias``, or None when there is none (:func:`read_champion`;
    :class:`RegistryError` when the registry cannot be read)."""
    ref = read_champion(family, alias)
    if ref is None:
        return None
    return configure().get_model_version(model_name(family), ref.version)


def load_estimator(model_uri: str):
    """The estimator object inside one of our pyfunc models."""
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().estimator


def model_versions(family: str) -> list[dict]:
    name = model_name(family)
    try:
        client = configure()   # opening a broken store fails here already
        rm = client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    aliases = rm.aliases or {}
    out = []
    for mv in client.search_model_versions(f"name='{name}'"):
        tags = mv.tags or {}
        info = {"family": family, "name": name, "version": str(mv.version), "run_id": mv.run_id,
                "aliases": [a for a, v in aliases.items() if str(v) == str(mv.version)]}
        info.update({k: (_parse_tag(tags.get(k)) if k in _JSON_TAGS else tags.get(k)) for k in VERSION_TAGS})
        info["orphan"] = bool(tags.get(orphans.ORPHAN_TAG))
        out.append(info)
    return sorted(out, key=lambda d: int(d["version"]), reverse=True)


def run_metrics(run_id: str) -> dict[str, float]:
    return dict(configure().get_run(run_id).data.metrics)


def download_artifacts(run_id: str, path: str, dst: str | None = None) -> str:
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path,
                                               dst_path=dst or tempfile.mkdtemp())

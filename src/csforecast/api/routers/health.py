"""Operations endpoints without auth: /healthz (liveness), /readyz (readiness), /metrics (Prometheus)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from csforecast.api.schemas import Liveness, Readiness

router = APIRouter(tags=["operations"])

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """Prometheus metrics in the app's own registry (several apps in one process never collide)."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("csforecast_http_requests", "HTTP requests by route template, method and status.",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("csforecast_http_request_duration_seconds",
                                 "Time from request start to the end of the response body.",
                                 ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.model_info = Gauge("csforecast_model_info", "Served model version per family (value 1).",
                                ["family", "version", "source"], registry=self.registry)
        self.score_set = Gauge("csforecast_score_set_info", "Served score set (value 1).",
                               ["version", "as_of", "data_hash"], registry=self.registry)
        self.accounts = Gauge("csforecast_score_set_accounts", "Accounts in the served score set.",
                              registry=self.registry)
        self.ready = Gauge("csforecast_ready", "1 when models and scores are loaded.", registry=self.registry)
        self.generation = Gauge("csforecast_state_generation", "Increments with every successful (re)load.",
                                registry=self.registry)
        self.reloads = Counter("csforecast_reloads", "Reload requests by outcome.", ["outcome"],
                               registry=self.registry)
        # monitoring of what was served (docs/metrics.md, "Monitoring"), as of the served score set
        self.ece = Gauge("csforecast_calibration_ece", "ECE of served probabilities against resolved outcomes, by "
                         "scope (overall, segment=…, horizon=…).", ["family", "scope"], registry=self.registry)
        self.outcomes = Gauge("csforecast_calibration_outcomes", "Resolved outcomes behind each calibration scope.",
                              ["family", "scope"], registry=self.registry)
        self.drifted = Gauge("csforecast_calibration_drifted", "1 when the family's calibration is flagged.",
                             ["family"], registry=self.registry)
        self.psi = Gauge("csforecast_feature_psi", "PSI of a feature (or the prediction) in the served score set "
                         "against the champion's training data.", ["family", "column"], registry=self.registry)
        self.psi_warnings = Gauge("csforecast_drift_warnings", "Columns whose PSI is above the warning threshold.",
                                  ["family"], registry=self.registry)

    def on_swap(self, state) -> None:
        self.model_info.clear()
        if state.models:
            for fam, v in state.models.versions.items():
                self.model_info.labels(family=fam, version=str(v), source=state.models.source).set(1)
        self.score_set.clear()
        if state.scores:
            self.score_set.labels(version=str(state.scores.version), as_of=str(state.scores.as_of),
                                  data_hash=state.scores.data_hash).set(1)
            self.accounts.set(state.scores.n)
        self.ready.set(1 if state.ready else 0)
        self.generation.set(state.generation)
        self._monitoring(state.scores.monitoring if state.scores else {})

    def _monitoring(self, report: dict) -> None:
        for g in (self.ece, self.outcomes, self.drifted, self.psi, self.psi_warnings):
            g.clear()
        for family, fam in (report.get("families") or {}).items():
            cal = fam.get("calibration")
            if cal:
                scopes = [("overall", cal["overall"])] + [(f"{k[3:]}={lab}", m) for k in ("by_segment", "by_horizon")
                                                          for lab, m in cal[k].items()]
                for scope, m in scopes:
                    if m.get("ece") is not None:
                        self.ece.labels(family=family, scope=scope).set(m["ece"])
                    self.outcomes.labels(family=family, scope=scope).set(m["n"])
            self.drifted.labels(family=family).set(1 if fam.get("drifted") else 0)
            for r in fam.get("drift") or []:
                if r.get("psi") is not None:
                    self.psi.labels(family=family, column=r["column"]).set(r["psi"])
            self.psi_warnings.labels(family=family).set(len(fam.get("psi_warnings") or []))


@router.get("/healthz", response_model=Liveness, summary="Liveness")
async def healthz() -> dict:
    """The process is up and answering (no auth, no dependencies)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, summary="Readiness",
            responses={503: {"model": Readiness, "description": "Models or scores are not loaded"}})
async def readyz(request: Request):
    """200 when the models and a score set are loaded, else 503 with the reasons (no auth)."""
    state = request.app.state.holder.current
    body = {"ready": state.ready, "models": state.versions,
            "model_source": state.models.source if state.models else None,
            "score_set": state.scores.info() if state.scores else None, "problems": list(state.problems)}
    return JSONResponse(body, status_code=200 if state.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"}})
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""The dashboard's routes: server-rendered pages under /ui.

The dashboard is added to the API app by `csforecast.asgi.create_serving_app` (``app.include_router(router)``)
and reads the app's state: ``settings``, ``holder`` (the serving state) and ``keys`` (the API key store).

Auth: the same API keys as /v1 (ui/sessions.py). `/ui/login` takes a key (form POST, never a query
string) and sets an HttpOnly, SameSite=Strict session cookie; every other page redirects to the login form
without a valid session. The login and logout forms carry a CSRF token (ui/sessions.py); a post without
the right one is refused (403) and changes nothing.

Data: each page reads the request's ServingState once (like the API), through the state's `UIData`
(ui/background.py), which shows what is ready and says what is still being computed or missing. The
page dicts are built by ui/views/.

Nothing is requested from outside the server: Plotly is served from the installed plotly package.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from csforecast.api.auth import Principal
from csforecast.api.state import ServingState
from csforecast.ui import views
from csforecast.ui.background import Job, arr_history, ui_data, warm_up
from csforecast.errors import StorageError
from csforecast.ui.sessions import (COOKIE, CSRF_COOKIE, CSRF_FIELD, CSRF_SECONDS, SESSION_SECONDS, check_csrf,
                                    csrf_token, key_records, make_session, new_csrf_nonce, principal, root_path,
                                    safe_next, server_secret)

log = logging.getLogger("csforecast.ui")

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
MAX_LOGIN_BODY = 4096
MLFLOW_UI_ENV = "CSFORECAST_MLFLOW_UI"          # base URL of the MLflow UI for run links
MLFLOW_UI_DEFAULT = "http://127.0.0.1:5000"
WORKLIST_DAYS = 90                              # the CSM book's work list: renewals within this many days

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["term"] = views.term
templates.env.globals["GLOSSARY"] = views.GLOSSARY

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
}


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _static_files() -> dict[str, tuple[Path, str]]:
    return {"ui.css": (STATIC / "ui.css", "text/css"), "ui.js": (STATIC / "ui.js", "text/javascript"),
            "plotly.min.js": (_plotly_js(), "text/javascript")}


# =========================================================================================== rendering
def _section(job: Job | None, what: str) -> dict | None:
    """None when ready; else {"pending": …} or {"missing": …} to show instead of the section."""
    if job is None:
        return {"missing": f"{what}: not requested"}
    if job.status == "ready":
        return None
    if job.status in ("pending", "running"):
        return {"pending": f"{what} is being computed{f' ({job.progress})' if job.progress else ''}…"
                           " reload the page in a little while"}
    return {"missing": f"{what} is not available: {job.message}"}


def _page(request: Request, name: str, ctx: dict, status: int = 200) -> Response:
    state: ServingState = request.app.state.holder.current
    sc = state.scores
    who = getattr(request.state, "ui_principal", None)
    base = {"request": request, "base": f"{root_path(request)}/ui", "title": "", "charts": False,
            "principal": who, "logout_csrf": _logout_csrf(request) if who else None,
            "footer": {"score_set": sc.version if sc else None, "as_of": sc.as_of if sc else None,
                       "data_hash": sc.data_hash if sc else None, "models": state.versions,
                       "model_source": state.models.source if state.models else None},
            "problems": list(state.problems)}
    resp = templates.TemplateResponse(request, name, {**base, **ctx}, status_code=status)
    resp.headers.update(SECURITY_HEADERS)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _no_scores(request: Request) -> Response:
    state = request.app.state.holder.current
    return _page(request, "unavailable.html",
                 {"title": "Not ready", "message": "no score set is loaded: " + ("; ".join(state.problems)
                                                                                  or "not loaded yet")}, 503)


def _auth(request: Request) -> Principal:
    p = principal(request)
    request.state.ui_principal = p
    return p


# =========================================================================================== routes: auth
def _secret(request: Request) -> bytes:
    return server_secret(request.app.state.settings.home)


def _logout_csrf(request: Request) -> str | None:
    try:
        return csrf_token(_secret(request), "logout", request.cookies.get(COOKIE) or "")
    except StorageError:
        return None


def _login_page(request: Request, next_: str, error: str | None, status: int = 200) -> Response:
    """The login form with a fresh CSRF token (and its nonce cookie); a 503 page saying why when the
    session key cannot be created."""
    try:
        secret = _secret(request)
    except StorageError as e:
        log.error("dashboard login unavailable: %s", e)
        return _page(request, "unavailable.html", {"title": "Sign in unavailable",
                                                   "message": f"dashboard sign-in is unavailable: {e}"}, 503)
    nonce = request.cookies.get(CSRF_COOKIE)
    if not nonce or len(nonce) > 100:
        nonce = new_csrf_nonce()
    resp = _page(request, "login.html", {"title": "Sign in", "next": next_, "error": error,
                                         "csrf": csrf_token(secret, "login", nonce)}, status)
    resp.set_cookie(CSRF_COOKIE, nonce, max_age=CSRF_SECONDS, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path=f"{root_path(request)}/ui")
    return resp


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    warm_up(request.app)
    return _login_page(request, safe_next(next), None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY:
        return _login_page(request, "/ui/", "request too large", 413)
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=10)
    key = (form.get("api_key") or [""])[0].strip()
    target = safe_next((form.get("next") or [None])[0])
    try:
        secret = _secret(request)
    except StorageError:
        return _login_page(request, target, None, 503)
    if not check_csrf(secret, "login", request.cookies.get(CSRF_COOKIE), (form.get(CSRF_FIELD) or [None])[0]):
        log.info("dashboard login refused (missing or wrong CSRF token)")
        return _login_page(request, target, "The sign-in form has expired or did not come from this server: "
                                            "please sign in again.", 403)
    keys = request.app.state.keys
    p = keys.verify(key) if key else None
    if p is None:
        log.info("dashboard login refused (invalid API key)")
        return _login_page(request, target, "That API key is not valid (or was revoked).", 401)
    rec = key_records(keys).get(p.key_id)
    if rec is None:   # revoked between verify and now
        return _login_page(request, target, "That API key was revoked.", 401)
    token = make_session(secret, rec)
    log.info("dashboard login: key %s (scope %s)", p.key_id, p.scope)
    resp = RedirectResponse(root_path(request) + target, status_code=303)
    resp.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path=f"{root_path(request)}/ui")
    resp.delete_cookie(CSRF_COOKIE, path=f"{root_path(request)}/ui", httponly=True, samesite="strict")
    resp.headers.update(SECURITY_HEADERS)
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    body = await request.body()
    form = parse_qs(body[:MAX_LOGIN_BODY].decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=10)
    session = request.cookies.get(COOKIE)
    if session:
        try:
            ok = check_csrf(_secret(request), "logout", session, (form.get(CSRF_FIELD) or [None])[0])
        except StorageError:
            ok = False
        if not ok:
            log.info("dashboard logout refused (missing or wrong CSRF token)")
            return _page(request, "unavailable.html", {"title": "Sign out", "message": (
                "the sign-out form did not come from this server; nothing was changed (use the Sign out "
                "button of a dashboard page)")}, 403)
    resp = RedirectResponse(f"{root_path(request)}/ui/login", status_code=303)
    resp.delete_cookie(COOKIE, path=f"{root_path(request)}/ui", httponly=True, samesite="strict")
    return resp


@router.get("/static/{name}")
def static(name: str) -> Response:
    f = _static_files().get(name)
    if f is None or not f[0].exists():
        raise HTTPException(404, detail="not found")
    return FileResponse(f[0], media_type=f[1], headers={"Cache-Control": "public, max-age=86400",
                                                        "X-Content-Type-Options": "nosniff"})


# =========================================================================================== routes: pages
@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
@router.get("/portfolio", response_class=HTMLResponse)
def portfolio(request: Request, segment: str | None = None, region: str | None = None,
              csm: str | None = None) -> Response:
    _auth(request)
    ui = ui_data(request)
    if ui.frame is None:
        return _no_scores(request)
    f = views.Filters.parse(segment, region, csm)
    unknown = [f"{k} {v!r}" for k, v in f.active().items() if v not in ui.options.get(k, ())]
    # renewal forecast (next quarters), sliced by at most one filter
    group_by, group, note = f.forecast_group()
    if unknown:     # nothing to compute (and no background work queued for arbitrary values)
        note = "no scored account has " + " or ".join(unknown)
    if note:
        forecast = {"missing": note}
    else:
        job = ui.job(f"forecast:{group_by or ''}", lambda j: ui.forecast(j, group_by))
        forecast = _section(job, "the renewal forecast of the next 4 quarters")
        partial = job.value if job.status == "running" and job.value else None
        if forecast is None or partial:
            sec = views.forecast_section(job.value if forecast is None else partial, group_by, group)
            forecast = {**sec, **({"partial": forecast["pending"]} if partial else {})}
    # backtests
    bjob = ui.backtest_job()
    missing = _section(bjob, "the latest backtest")
    backtest = views.backtest_section(bjob.value, f.segment) if missing is None else missing
    if missing is None and (f.region or f.csm):
        backtest["note"] = ("backtests are computed per segment only: shown for "
                            + (f"segment {f.segment}" if f.segment else "the whole portfolio"))
    # ARR movements
    key = json.dumps([f.segment, f.region, f.csm])
    if unknown:
        movements = {"missing": note}
    else:
        mjob = ui.job(f"movements:{'' if not f.active() else key}", lambda j: ui.movements(f))
        mm = _section(mjob, "ARR movements")
        movements = views.movements_section(mjob.value) if mm is None else mm
    ctx = views.portfolio_view(ui.frame, f, ui.as_of, forecast=forecast, backtest=backtest, movements=movements,
                               options=ui.options)
    ctx.update(process_sections(ui))
    return _page(request, "portfolio.html", {"title": "Portfolio", "charts": True, "v": ctx, "as_of": ui.as_of})


def process_sections(ui) -> dict:
    """The portfolio page's forecast-process sections: the largest model-vs-call disagreements and the forecast
    ledger (read on every view). A fault in either is said in its section, never a failed page."""
    from csforecast.scoring.worklist import disagreements

    frame = ui.state.scores.frame if ui.state.scores is not None else None
    out = {"disagreements": views.disagreements_view(disagreements(frame, 90, 15))}
    try:
        out["ledger"] = views.ledger_view(ui.ledger())
    except (StorageError, OSError) as e:
        out["ledger"] = {"missing": f"the forecast ledger cannot be read: {e}"}
    return out


@router.get("/accounts/{account_id:path}", response_class=HTMLResponse)   # an id may hold a slash
def account(request: Request, account_id: str) -> Response:
    _auth(request)
    ui = ui_data(request)
    state = ui.state
    if state.scores is None:
        return _no_scores(request)
    raw = state.scores.details.get(account_id)
    if raw is None:
        return _page(request, "unavailable.html", {"title": "Unknown account",
                                                   "message": f"account {account_id[:64]!r} is not in score set "
                                                              f"v{state.scores.version}"}, 404)
    detail = json.loads(raw)
    hjob = ui.peek("history")
    expl = (hjob.value or {}).get("explanations", {}).get(account_id) if hjob and hjob.status == "ready" else None
    data, why = ui.data()
    contracts = arr_hist = None
    if data is not None:
        idx = data["by_account"].get(account_id)
        if idx is not None:
            contracts = data["contracts"].iloc[idx]
            arr_hist = arr_history(contracts, data["data_end"])
        else:
            why = "the data source has no contracts for this account"
    ctx = views.account_view(detail, expl, contracts, arr_hist, contracts_missing=why, served=state.versions)
    if hjob is None or hjob.status != "ready":
        ctx["trend_note"] = ("what moved the score week by week is still loading…" if hjob and hjob.status in
                             ("pending", "running") else
                             f"what moved the score week by week is not available"
                             f"{': ' + hjob.message if hjob and hjob.message else ''}")
    return _page(request, "account.html", {"title": f"Account {ctx['name']}", "charts": True, "a": ctx})


@router.get("/csm", response_class=HTMLResponse)
def csm_index(request: Request) -> Response:
    _auth(request)
    ui = ui_data(request)
    if ui.frame is None:
        return _no_scores(request)
    return _page(request, "csm_index.html", {"title": "CSM books", "rows": views.csm_list_view(ui.frame)})


@router.get("/csm/{csm_id:path}", response_class=HTMLResponse)
def csm_book(request: Request, csm_id: str, page: int = 1) -> Response:
    _auth(request)
    ui = ui_data(request)
    if ui.frame is None:
        return _no_scores(request)
    hjob = ui.peek("history")
    last = (hjob.value or {}).get("last") if hjob and hjob.status == "ready" else None
    v = views.csm_view(ui.frame, csm_id, last, page=page)
    if v is None:
        return _page(request, "unavailable.html", {"title": "Unknown CSM",
                                                   "message": f"no scored account has CSM {csm_id[:64]!r}"}, 404)
    from csforecast.scoring.worklist import worklist

    frame = ui.state.scores.frame if ui.state.scores is not None else None
    v["worklist"] = views.worklist_view(worklist(frame, csm_id, WORKLIST_DAYS))
    v["worklist_days"] = WORKLIST_DAYS
    if hjob is None or hjob.status != "ready":
        v["history_note"] = ("the explanations of this week's changes are still loading…"
                             if hjob and hjob.status in ("pending", "running") else
                             "the explanations of this week's changes are not available"
                             f"{': ' + hjob.message if hjob and hjob.message else ''}")
    return _page(request, "csm.html", {"title": f"CSM {csm_id}", "v": v})


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> Response:
    return _models_response(request, _auth(request))


def _scorecard_section(request: Request, state: ServingState, who: Principal, form: dict | None = None,
                       error: str | None = None, yours: dict | None = None) -> dict:
    """The models page's editable scorecard (scoring/scorecard.py): the weight sets on the served health
    model's validation rows, with the form for a key with scope write or admin."""
    from csforecast.jsonsafe import error_text
    from csforecast.scoring.scorecard import SavedWeights, champion_reference, scorecard_report

    settings = request.app.state.settings
    est = state.models.estimators.get("health") if state.models else None
    if est is None:
        return views.scorecard_view(None)
    try:
        ref = champion_reference((state.models.info.get("health") or {}).get("run_id"))
        saved = SavedWeights(settings.home)     # the named sets saved through the API are listed too
        report = scorecard_report(ref, est, settings, saved.load(),
                                  {**saved.named(), **({"yours": yours} if yours else {})})
    except Exception as e:  # noqa: BLE001 - an unreachable tracking store: said on the page, never a 500
        return {"missing": f"the health model's validation rows cannot be read: {error_text(e)}", "sets": [],
                "components": [], "can_edit": False}
    can_edit = who is not None and who.allows("write")
    csrf = csrf_token(_secret(request), "scorecard", request.cookies.get(COOKIE) or "") if can_edit else None
    return views.scorecard_view(report, form, error, can_edit, csrf)


@router.post("/models/scorecard", response_class=HTMLResponse)
async def scorecard_form(request: Request) -> Response:
    """The scorecard form: `action=evaluate` shows the weights beside the others (nothing stored);
    `action=save` stores them (CSFORECAST_HOME/scorecard.json, atomically) and returns to the page. Needs a
    key with scope write or admin and the form's CSRF token; a bad weight is shown on the page (422), nothing
    saved."""
    from fastapi.concurrency import run_in_threadpool

    from csforecast.models.scorecard import WeightSetError, check_weight_set
    from csforecast.scoring.scorecard import SavedWeights

    who = _auth(request)
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY:
        return _page(request, "unavailable.html", {"title": "Scorecard", "message": "request too large"}, 413)
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=30)
    try:
        ok = check_csrf(_secret(request), "scorecard", request.cookies.get(COOKIE), (form.get(CSRF_FIELD) or [None])[0])
    except StorageError:
        ok = False
    if not ok or not who.allows("write"):
        log.info("dashboard scorecard refused (%s)", "missing or wrong CSRF token" if not ok else "read-only key")
        return _page(request, "unavailable.html", {"title": "Scorecard", "message": (
            "the scorecard form did not come from this server; nothing was changed" if not ok else
            "saving or evaluating a scorecard needs an API key with scope write or admin; nothing was changed")},
            403)
    raw = {k[2:]: (v[0].strip() or "0") for k, v in form.items() if k.startswith("w_")}
    action = (form.get("action") or ["evaluate"])[0]
    try:
        weights = check_weight_set(raw)
    except WeightSetError as e:
        return await run_in_threadpool(_models_response, request, who, {"form": raw, "error": str(e)}, 422)
    if action == "save":
        try:
            await run_in_threadpool(SavedWeights(request.app.state.settings.home).save, weights, who.key_id)
        except OSError as e:
            return await run_in_threadpool(_models_response, request, who,
                                           {"form": raw, "error": f"the weights could not be saved: {e}"}, 503)
        log.info("dashboard scorecard saved by key %s: %s", who.key_id, weights)
        return RedirectResponse(f"{root_path(request)}/ui/models#scorecard", status_code=303)
    return await run_in_threadpool(_models_response, request, who, {"form": raw, "yours": weights})


def _models_response(request: Request, who: Principal, scorecard: dict | None = None, status: int = 200
                     ) -> Response:
    ui = ui_data(request)
    state = ui.state
    if state.models is None:
        return _page(request, "unavailable.html", {"title": "Models", "message": "no models are loaded: "
                                                   + ("; ".join(state.problems) or "not loaded yet")}, 503)
    rjob = ui.job("registry", ui.registry)
    bjob = ui.backtest_job()
    v = views.models_view(state.models.info, state.models.versions, state.models.source,
                          state.models.loaded_at.isoformat(timespec="seconds") if state.models.loaded_at else None,
                          rjob.value if rjob.status == "ready" else None,
                          os.environ.get(MLFLOW_UI_ENV, MLFLOW_UI_DEFAULT),
                          bjob.value if bjob.status == "ready" else None)
    v["registry_note"] = _section(rjob, "the run artifacts")
    v["backtest_note"] = _section(bjob, "the latest backtest")
    v["monitoring"] = views.monitoring_view(state.scores.monitoring if state.scores else None)
    v["scorecard"] = _scorecard_section(request, state, who, **(scorecard or {}))
    return _page(request, "models.html", {"title": "Models", "v": v}, status)


@router.get("/models/{family}/artifacts/{name}")
def model_artifact(request: Request, family: str, name: str) -> Response:
    _auth(request)
    ui = ui_data(request)
    j = ui.peek("registry")
    blob = ((j.value or {}).get(family) or {}).get("files", {}).get(name) if j and j.status == "ready" else None
    if blob is None:
        raise HTTPException(404, detail="no such artifact")
    return Response(blob, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@router.get("/backtest/fan_chart.png")
def backtest_fan(request: Request) -> Response:
    _auth(request)
    j = ui_data(request).backtest_job()
    blob = (j.value or {}).get("fan_chart") if j and j.status == "ready" else None
    if blob is None:
        raise HTTPException(404, detail="no backtest fan chart")
    return Response(blob, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@router.get("/glossary", response_class=HTMLResponse)
def glossary(request: Request) -> Response:
    _auth(request)
    hb = request.app.state.settings.health_bands
    return _page(request, "glossary.html", {"title": "Glossary", "v": views.glossary_view(hb.model_dump())})


@router.get("/status")
def status(request: Request, format: str | None = None) -> Response:
    """Progress of the background computations: a readable page for a browser; JSON for ``?format=json`` or a
    client that does not ask for HTML (scripts, the tests)."""
    _auth(request)
    st = ui_data(request).status()
    if format == "html" or (format is None and "text/html" in request.headers.get("accept", "")):
        return _page(request, "status.html", {"title": "Status", "v": views.status_view(st)})
    return JSONResponse(st, headers={"Cache-Control": "no-store"})


# ================================================================ routes: customer voice, pipeline (issue 17)
def _analysis(request: Request, compute, what: str) -> dict:
    """An `api.analyses` result for this request's state, or {"missing": why} when the data cannot give it."""
    from csforecast.api.errors import DataUnavailable

    state: ServingState = request.app.state.holder.current
    if not state.data.location:
        return {"missing": f"{what}: no data source configured (start the server with `csforecast serve --data "
                           f"SRC` or set CSFORECAST_DATA)"}
    try:
        return compute(state.data)
    except DataUnavailable as e:
        return {"missing": f"{what} is not available: {e}"}


@router.get("/voc", response_class=HTMLResponse)
def voc_page(request: Request) -> Response:
    from csforecast.api import analyses

    _auth(request)
    voc = _analysis(request, lambda d: analyses.voc(d, group_by="segment"), "the voice of the customer")
    reasons = _analysis(request, analyses.churn_reasons, "churn reasons")
    return _page(request, "voc.html", {
        "title": "Customer voice", "charts": True,
        "voc": voc if "missing" in voc else views.voc_view(voc),
        "reasons": reasons if "missing" in reasons else views.reasons_section(reasons)})


@router.get("/pipeline", response_class=HTMLResponse)
def pipeline_page(request: Request) -> Response:
    from csforecast.api import analyses

    _auth(request)
    p = _analysis(request, analyses.pipeline, "the expansion pipeline")
    return _page(request, "pipeline.html", {"title": "Expansion pipeline", "charts": True,
                                            "p": p if "missing" in p else views.pipeline_view(p)})

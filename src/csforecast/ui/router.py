"""The dashboard: server-rendered pages under /ui, mounted on the API app with one line::

    app.include_router(ui_router)          # from csforecast.ui.router import router as ui_router

Auth: the same API keys as /v1. `/ui/login` takes a key (form POST, never a query string) and sets an
HttpOnly, SameSite=Strict cookie holding a signed session token ``<key id>.<expiry>.<HMAC>``; the HMAC
covers the key's id, scope, expiry and its stored hash under a server secret kept in
``CSFORECAST_HOME/ui_session.key``, so the raw key is never stored, logged or echoed, a revoked key ends
its sessions at once, and sessions survive restarts and work across workers. Every other page redirects
to the login form without a valid session.

Data: each page reads the request's ServingState once (like the API). Per state a `UIData` builds the
portfolio frame from the pre-serialised score set (once) and computes everything that needs the data
source or the registry -- weekly change explanations, ARR movements, the renewal forecast of the next 4
quarters, the latest backtest, model artifacts -- in one background thread, so a page never waits for
them: it shows what is ready and says what is still being computed or missing.

Nothing is requested from outside the server: Plotly is served from the installed plotly package.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote

import pandas as pd
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from csforecast.api.auth import Principal
from csforecast.api.errors import DataUnavailable
from csforecast.api.state import ServingState
from csforecast.ui import views

log = logging.getLogger("csforecast.ui")

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
COOKIE = "csforecast_ui"
SESSION_SECONDS = 8 * 3600
SECRET_FILE = "ui_session.key"
FORECAST_QUARTERS = 4
MAX_LOGIN_BODY = 4096
MAX_JOBS = 200
MLFLOW_UI_ENV = "CSFORECAST_MLFLOW_UI"          # base URL of the MLflow UI for run links
MLFLOW_UI_DEFAULT = "http://127.0.0.1:5000"
FORECAST_EXPERIMENT = "csforecast-forecast"

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


# =========================================================================================== sessions
_secret_lock = threading.Lock()
_secrets: dict[str, bytes] = {}


def _server_secret(home: Path) -> bytes:
    """32 random bytes in CSFORECAST_HOME/ui_session.key (mode 0600), created on first use."""
    path = Path(home) / SECRET_FILE
    key = str(path)
    with _secret_lock:
        if key in _secrets:
            return _secrets[key]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = secrets.token_bytes(32)
            fd, tmp = tempfile.mkstemp(prefix=SECRET_FILE + ".", dir=path.parent)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                try:
                    os.link(tmp, path)          # atomic create-if-absent: a concurrent writer's secret wins
                except FileExistsError:
                    pass
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            data = path.read_bytes()
        if len(data) < 16:
            raise RuntimeError(f"{path} is too short to be a session secret; delete it to make a new one")
        _secrets[key] = data
        return data


def _key_records(keys) -> dict[str, dict]:
    """id -> stored record (id, scope, salt, hash) of the API key store (re-read when the file changes)."""
    current = getattr(keys, "_current", None)
    if callable(current):
        return current()
    try:
        data = json.loads(Path(keys.path).read_text())
    except (OSError, ValueError):
        return {}
    return {k["id"]: k for k in data.get("keys", []) if isinstance(k, dict) and "id" in k}


def _signature(secret: bytes, rec: dict, expires: int) -> str:
    msg = f"{rec.get('id')}|{rec.get('scope')}|{expires}|{rec.get('hash')}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def make_session(secret: bytes, rec: dict, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_SECONDS)
    return f"{rec['id']}.{expires}.{_signature(secret, rec, expires)}"


def check_session(secret: bytes, records: dict[str, dict], token: str | None, now: float | None = None
                  ) -> Principal | None:
    if not token or len(token) > 200:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    key_id, exp, sig = parts[0], int(parts[1]), parts[2]
    rec = records.get(key_id)
    if rec is None or exp < (now or time.time()):
        hmac.compare_digest(sig, "0" * 64)
        return None
    if not hmac.compare_digest(sig, _signature(secret, rec, exp)):
        return None
    return Principal(str(rec["id"]), str(rec.get("scope")))


def _safe_next(target: str | None) -> str:
    """Only a local /ui path (no scheme, host or protocol-relative //) may be a redirect target."""
    if (not target or not target.startswith("/ui") or target.startswith("//") or "\\" in target
            or any(ord(ch) < 32 for ch in target) or len(target) > 1000 or target.startswith("/ui/log")):
        return "/ui/"
    return target


def _root(request: Request) -> str:
    return request.scope.get("root_path", "") or ""


def principal(request: Request) -> Principal:
    """The logged-in key, or a 303 to the login form (with the page to come back to)."""
    s = request.app.state.settings
    token = request.cookies.get(COOKIE)
    p = check_session(_server_secret(s.home), _key_records(request.app.state.keys), token) if token else None
    if p is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        loc = f"{_root(request)}/ui/login?next={quote(_safe_next(target[len(_root(request)):]), safe='/')}"
        raise HTTPException(303, detail="login required", headers={"Location": loc})
    return p


# =========================================================================================== background data
@dataclass
class Job:
    status: str = "pending"          # pending | running | ready | unavailable | failed
    value: Any = None
    message: str | None = None
    progress: str | None = None
    started: float | None = None
    seconds: float | None = None
    created: float = field(default_factory=time.monotonic)

    def describe(self) -> dict:
        return {"status": self.status, "message": self.message, "progress": self.progress,
                "seconds": None if self.seconds is None else round(self.seconds, 2)}


def _err(e: BaseException, limit: int = 300) -> str:
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


class UIData:
    """What the pages of one ServingState show: the portfolio frame (built at once) and the background jobs."""

    def __init__(self, state: ServingState, settings):
        t0 = time.perf_counter()
        self.state = state
        self.settings = settings
        sc = state.scores
        self.frame = views.build_frame(sc.items, sc.details) if sc is not None else None
        self.options = views.filter_options(self.frame) if self.frame is not None else None
        self.as_of = date.fromisoformat(sc.as_of) if sc is not None and sc.as_of else None
        self.build_seconds = time.perf_counter() - t0
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._data_lock = threading.Lock()
        self._data: dict | None = None
        self._data_error: BaseException | None = None
        # one daemon worker: jobs run in submission order, and a long forecast never holds up the server's exit
        self.closed = False
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._loop, name="csforecast-ui", daemon=True)
        self._worker.start()
        # warm-up, in the order the pages need them
        if sc is not None:
            self.job("history", self._history)
        self.job("data", self._load_data)
        if state.models is not None:
            self.job("registry", self._registry)
        self.job("backtest", self._backtest)
        self.job("movements:", lambda job: self._movements(views.Filters()))
        self.job("forecast:", lambda job: self._forecast(job, None))

    # ---------------------------------------------------------------------------------------- jobs
    def job(self, name: str, fn: Callable[[Job], Any]) -> Job:
        with self._lock:
            j = self._jobs.get(name)
            if j is None:
                if self.closed:
                    return Job("unavailable", message="the served state was replaced; reload the page")
                self._evict()
                j = self._jobs[name] = Job()
                self._queue.put((name, j, fn))
            return j

    def peek(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def _evict(self) -> None:
        if len(self._jobs) < MAX_JOBS:
            return
        done = sorted((j.created, n) for n, j in self._jobs.items()
                      if j.status in ("ready", "unavailable", "failed") and ":" in n and not n.endswith(":"))
        for _, n in done[: len(self._jobs) - MAX_JOBS + 1]:
            del self._jobs[n]

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._run(*item)

    def _run(self, name: str, job: Job, fn: Callable[[Job], Any]) -> None:
        if self.closed:
            job.status, job.message = "unavailable", "the served state was replaced"
            return
        job.status, job.started = "running", time.perf_counter()
        try:
            job.value = fn(job)
            job.status = "ready"
        except DataUnavailable as e:
            job.status, job.message = "unavailable", str(e)
        except LookupError as e:              # nothing of that kind exists (no backtest, no champion …)
            job.status, job.message = "unavailable", str(e.args[0] if e.args else e)
        except Exception as e:  # noqa: BLE001 - shown on the page, logged with its traceback
            log.exception("dashboard job %s failed", name)
            job.status, job.message = "failed", _err(e)
        finally:
            job.seconds = time.perf_counter() - job.started

    def status(self) -> dict:
        return {"generation": self.state.generation, "frame_seconds": round(self.build_seconds, 3),
                "jobs": {n: j.describe() for n, j in sorted(self._jobs.items())}}

    def close(self) -> None:
        self.closed = True
        self._queue.put(None)

    def wait_idle(self, timeout: float = 600) -> bool:
        """Block until every submitted job has finished (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(j.status not in ("pending", "running") for j in list(self._jobs.values())):
                return True
            time.sleep(0.05)
        return False

    # ---------------------------------------------------------------------------------------- job bodies
    def _history(self, job: Job) -> dict:
        """The weekly health history's change explanations of this score set (scores store)."""
        import duckdb

        path = Path(self.settings.scores_db)
        if not path.exists():
            raise DataUnavailable(f"no scores database at {path}")
        con = duckdb.connect(str(path), read_only=True)
        try:
            cols = {r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'health_history'").fetchall()}
            if not {"account_id", "week"} <= cols:
                raise DataUnavailable("this score set has no weekly health history")
            want = [c for c in ("account_id", "week", "health_score", "change", "change_explanation") if c in cols]
            h = con.execute(f"SELECT {', '.join(want)} FROM health_history WHERE version = ?",
                            [int(self.state.scores.version)]).fetchdf()
        finally:
            con.close()
        return {"last": views.last_changes(h), "explanations": views.trend_explanations(h)}

    def _load_data(self, job: Job | None = None) -> dict:
        with self._data_lock:
            if self._data is not None:
                return self._data
            if self._data_error is not None:
                raise self._data_error
            d = self.state.data
            try:
                if not d.location:
                    raise DataUnavailable("no data source configured (start the server with `csforecast serve "
                                          "--data SRC` or set CSFORECAST_DATA)")
                contracts = d.frame("contracts")
                try:
                    accounts = d.frame("accounts")
                except DataUnavailable:
                    accounts = None
                end = d.data_end()
            except BaseException as e:
                self._data_error = e
                raise
            by_acc = contracts.groupby(contracts["account_id"].astype(str)).indices
            self._data = {"contracts": contracts, "accounts": accounts, "data_end": end, "by_account": by_acc}
            return self._data

    def data(self) -> tuple[dict | None, str | None]:
        """(data, None) when loaded; (None, why not) otherwise (pending or unavailable)."""
        j = self.job("data", self._load_data)
        if j.status == "ready":
            return j.value, None
        if j.status in ("pending", "running"):
            return None, "loading the data source…"
        return None, j.message

    def _movements(self, filters: views.Filters) -> pd.DataFrame:
        from csforecast.metrics.arr import arr_movements

        data = self._load_data()
        contracts = data["contracts"]
        accounts = data["accounts"]
        if accounts is None and filters.active():
            raise DataUnavailable("the data source has no accounts table to filter ARR movements by")
        ids = filters.account_ids(accounts) if accounts is not None else None
        if ids is not None:
            contracts = contracts[contracts["account_id"].astype(str).isin(ids)]
        return arr_movements(contracts, None, period="quarter", data_end=data["data_end"])

    def _forecast(self, job: Job, group_by: str | None) -> list[dict]:
        from importlib import import_module

        try:
            fn = import_module("csforecast.forecast.renewals").forecast_window
        except (ImportError, AttributeError) as e:
            raise DataUnavailable(f"renewal forecasts are not available in this build ({_err(e)})") from e
        data = self._load_data()
        d = self.state.data
        est = self.state.models.estimators.get("churn") if self.state.models else None
        if est is None:
            raise DataUnavailable("no churn model is served: the renewal forecast needs one")
        start = pd.Period(pd.Timestamp(data["data_end"]), freq="Q")
        out = []
        for k in range(FORECAST_QUARTERS):
            q = start + k
            job.progress = f"quarter {k + 1} of {FORECAST_QUARTERS} ({q})"
            with d.lock:     # the source holds one DuckDB connection: never used by two threads at once
                res = fn(d.source(), q.start_time.date(), (q + 1).start_time.date(), group_by=group_by, as_of=None,
                         churn_estimator=est)
            out.append(res)
            job.value = list(out)       # partial results are shown while the rest is computed
        job.progress = None
        return out

    def _registry(self, job: Job) -> dict:
        """Per served family: experiment id, the artifacts shown on the models page (bytes), the health report."""
        from csforecast.tracking import store

        client = store.configure(self.settings)
        out: dict[str, dict] = {}
        for fam in self.state.models.versions:
            info = self.state.models.info.get(fam) or {}
            run_id = info.get("run_id")
            entry: dict = {"experiment_id": None, "artifacts": [], "files": {}, "report": None}
            out[fam] = entry
            if not run_id:
                entry["error"] = "the registry did not say which run produced this version"
                continue
            try:
                entry["experiment_id"] = client.get_run(run_id).info.experiment_id
                names = {a.path for a in client.list_artifacts(run_id)}
                for name in views.FAMILY_ARTIFACTS.get(fam, ()) + ((views.HEALTH_REPORT,) if fam == "health" else ()):
                    if name not in names:
                        continue
                    tmp = tempfile.mkdtemp(prefix="csforecast-ui-")
                    try:
                        p = Path(store.download_artifacts(run_id, name, tmp))
                        blob = p.read_bytes()
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                    if name.endswith(".md"):
                        entry["report"] = blob.decode("utf-8", "replace")
                    else:
                        entry["files"][name] = blob
                        entry["artifacts"].append(name)
            except Exception as e:  # noqa: BLE001 - shown beside the family
                entry["error"] = f"artifacts of run {run_id} could not be read: {_err(e)}"
        return out

    def _backtest(self, job: Job) -> dict:
        """The latest backtest run (experiment csforecast-forecast, tag kind=backtest) and its backtest.json."""
        from csforecast.tracking import store

        client = store.configure(self.settings)
        exp = client.get_experiment_by_name(FORECAST_EXPERIMENT)
        if exp is None:
            raise LookupError("no backtest run yet (run `csforecast backtest --data …`)")
        runs = client.search_runs([exp.experiment_id], "tags.kind = 'backtest' and attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            raise LookupError("no backtest run yet (run `csforecast backtest --data …`)")
        run = runs[0]
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        if "backtest.json" not in names:
            raise LookupError(f"the latest backtest run {run.info.run_id} has no backtest.json")
        tmp = tempfile.mkdtemp(prefix="csforecast-ui-")
        try:
            result = json.loads(Path(store.download_artifacts(run.info.run_id, "backtest.json", tmp)).read_text())
            fan = (Path(store.download_artifacts(run.info.run_id, "fan_chart.png", tmp)).read_bytes()
                   if "fan_chart.png" in names else None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        created = pd.Timestamp(run.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M UTC")
        return {"run_id": run.info.run_id, "experiment_id": exp.experiment_id, "created": created,
                "result": result, "fan_chart": fan}


_ui_lock = threading.Lock()


def ui_data_for(app) -> UIData:
    """The UIData of the app's current serving state (built on first use after a load or reload)."""
    state = app.state.holder.current
    cur = getattr(app.state, "ui_data", None)
    if cur is not None and cur.state is state:
        return cur
    with _ui_lock:
        cur = getattr(app.state, "ui_data", None)
        if cur is not None and cur.state is state:
            return cur
        new = UIData(state, app.state.settings)
        app.state.ui_data = new
        if cur is not None:
            cur.close()
        return new


def ui_data(request: Request) -> UIData:
    return ui_data_for(request.app)


def _warm_up(app) -> None:
    """Build the page data in the background while the user is on the login form."""
    cur = getattr(app.state, "ui_data", None)
    if cur is not None and cur.state is app.state.holder.current:
        return

    def run():
        try:
            ui_data_for(app)
        except Exception:  # noqa: BLE001 - the first page request will retry and show the error
            log.exception("dashboard warm-up failed")
    threading.Thread(target=run, name="csforecast-ui-warmup", daemon=True).start()


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
    base = {"request": request, "base": f"{_root(request)}/ui", "title": "", "charts": False,
            "principal": getattr(request.state, "ui_principal", None),
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
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    _warm_up(request.app)
    return _page(request, "login.html", {"title": "Sign in", "next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY:
        return _page(request, "login.html", {"title": "Sign in", "next": "/ui/", "error": "request too large"}, 413)
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=10)
    key = (form.get("api_key") or [""])[0].strip()
    target = _safe_next((form.get("next") or [None])[0])
    keys = request.app.state.keys
    p = keys.verify(key) if key else None
    if p is None:
        log.info("dashboard login refused (invalid API key)")
        return _page(request, "login.html", {"title": "Sign in", "next": target,
                                             "error": "That API key is not valid (or was revoked)."}, 401)
    rec = _key_records(keys).get(p.key_id)
    if rec is None:   # revoked between verify and now
        return _page(request, "login.html", {"title": "Sign in", "next": target, "error": "That API key was revoked."},
                     401)
    token = make_session(_server_secret(request.app.state.settings.home), rec)
    log.info("dashboard login: key %s (scope %s)", p.key_id, p.scope)
    resp = RedirectResponse(_root(request) + target, status_code=303)
    resp.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path=f"{_root(request)}/ui")
    resp.headers.update(SECURITY_HEADERS)
    return resp


@router.post("/logout")
def logout(request: Request) -> Response:
    resp = RedirectResponse(f"{_root(request)}/ui/login", status_code=303)
    resp.delete_cookie(COOKIE, path=f"{_root(request)}/ui", httponly=True, samesite="strict")
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
        job = ui.job(f"forecast:{group_by or ''}", lambda j: ui._forecast(j, group_by))
        forecast = _section(job, "the renewal forecast of the next 4 quarters")
        partial = job.value if job.status == "running" and job.value else None
        if forecast is None or partial:
            sec = views.forecast_section(job.value if forecast is None else partial, group_by, group)
            forecast = {**sec, **({"partial": forecast["pending"]} if partial else {})}
    # backtests
    bjob = ui.job("backtest", ui._backtest)
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
        mjob = ui.job(f"movements:{'' if not f.active() else key}", lambda j: ui._movements(f))
        mm = _section(mjob, "ARR movements")
        movements = views.movements_section(mjob.value) if mm is None else mm
    ctx = views.portfolio_view(ui.frame, f, ui.as_of, forecast=forecast, backtest=backtest, movements=movements,
                               options=ui.options)
    return _page(request, "portfolio.html", {"title": "Portfolio", "charts": True, "v": ctx, "as_of": ui.as_of})


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
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
            arr_hist = _arr_history(contracts, data["data_end"])
        else:
            why = "the data source has no contracts for this account"
    ctx = views.account_view(detail, expl, contracts, arr_hist, contracts_missing=why, served=state.versions)
    if hjob is None or hjob.status != "ready":
        ctx["trend_note"] = ("what moved the score week by week is still loading…" if hjob and hjob.status in
                             ("pending", "running") else
                             f"what moved the score week by week is not available"
                             f"{': ' + hjob.message if hjob and hjob.message else ''}")
    return _page(request, "account.html", {"title": f"Account {ctx['name']}", "charts": True, "a": ctx})


def _arr_history(contracts: pd.DataFrame, data_end: date) -> pd.Series | None:
    """The account's ARR on the first day of every month from its first contract to the data end."""
    from csforecast.metrics.arr import account_arr_panel

    c = contracts[contracts["start_date"].notna()]
    if c.empty:
        return None
    first = pd.Timestamp(c["start_date"].min()).to_period("M").start_time
    months = pd.date_range(first, pd.Timestamp(data_end), freq="MS")
    if len(months) == 0:
        return None
    panel = account_arr_panel(c, list(months))
    return panel.iloc[0] if len(panel) else None


@router.get("/csm", response_class=HTMLResponse)
def csm_index(request: Request) -> Response:
    _auth(request)
    ui = ui_data(request)
    if ui.frame is None:
        return _no_scores(request)
    return _page(request, "csm_index.html", {"title": "CSM books", "rows": views.csm_list_view(ui.frame)})


@router.get("/csm/{csm_id}", response_class=HTMLResponse)
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
    if hjob is None or hjob.status != "ready":
        v["history_note"] = ("the explanations of this week's changes are still loading…"
                             if hjob and hjob.status in ("pending", "running") else
                             "the explanations of this week's changes are not available"
                             f"{': ' + hjob.message if hjob and hjob.message else ''}")
    return _page(request, "csm.html", {"title": f"CSM {csm_id}", "v": v})


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> Response:
    _auth(request)
    ui = ui_data(request)
    state = ui.state
    if state.models is None:
        return _page(request, "unavailable.html", {"title": "Models", "message": "no models are loaded: "
                                                   + ("; ".join(state.problems) or "not loaded yet")}, 503)
    rjob = ui.job("registry", ui._registry)
    bjob = ui.job("backtest", ui._backtest)
    v = views.models_view(state.models.info, state.models.versions, state.models.source,
                          state.models.loaded_at.isoformat(timespec="seconds") if state.models.loaded_at else None,
                          rjob.value if rjob.status == "ready" else None,
                          os.environ.get(MLFLOW_UI_ENV, MLFLOW_UI_DEFAULT),
                          bjob.value if bjob.status == "ready" else None)
    v["registry_note"] = _section(rjob, "the run artifacts")
    v["backtest_note"] = _section(bjob, "the latest backtest")
    return _page(request, "models.html", {"title": "Models", "v": v})


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
    j = ui_data(request).peek("backtest")
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
def status(request: Request) -> JSONResponse:
    """Progress of the background computations (JSON; used by the tests and for troubleshooting)."""
    _auth(request)
    return JSONResponse(ui_data(request).status(), headers={"Cache-Control": "no-store"})

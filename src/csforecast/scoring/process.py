"""The forecast-process store: CSM calls recorded through the API and frozen forecasts (the ledger).

A DuckDB file beside the scores store (``CSFORECAST_HOME/forecast_process.duckdb``), separate from it so a
call recorded while ``csforecast score`` writes a score set never waits for it. Tables:

  recorded_calls(account_id, contract_id, called_at DATE, csm_id, category, amount DOUBLE, note,
                 recorded_at TIMESTAMP)            -- same columns as the forecast_calls table, plus when
  forecast_ledger(id INTEGER, frozen_at TIMESTAMP, as_of DATE, window_start DATE, window_end DATE,
                  method VARCHAR, data_hash VARCHAR, entry VARCHAR)  -- entry: the frozen forecast (JSON)

Every write is one transaction. Faults are ``StorageError`` naming the file (never a DuckDB traceback).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from csforecast.errors import StorageError, storage_error
from csforecast.features.calls import calls_with_due_date, source_calls

__all__ = ["process_db", "record_call", "recorded_calls", "all_calls", "freeze", "ledger_entries"]

CALL_COLUMNS = ("account_id", "contract_id", "called_at", "csm_id", "category", "amount", "note")


def process_db(home: Path | None = None) -> Path:
    """The store's path under ``home`` (default: the settings' home)."""
    if home is None:
        from csforecast.config import get_settings
        home = get_settings().home
    return Path(home) / "forecast_process.duckdb"


def _connect(path: Path, read_only: bool = False):
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
    except (OSError, duckdb.Error) as e:
        fault = storage_error(e, path, "read" if read_only else "write")
        raise fault or StorageError(f"the forecast-process store {path} cannot be opened: {e}") from e
    return con


def _ensure(con) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS recorded_calls (account_id VARCHAR, contract_id VARCHAR, "
                "called_at DATE, csm_id VARCHAR, category VARCHAR, amount DOUBLE, note VARCHAR, "
                "recorded_at TIMESTAMP)")
    con.execute("CREATE TABLE IF NOT EXISTS forecast_ledger (id INTEGER, frozen_at TIMESTAMP, as_of DATE, "
                "window_start DATE, window_end DATE, method VARCHAR, data_hash VARCHAR, entry VARCHAR)")


def _write(path: Path, fn):
    con = _connect(path)
    try:
        con.execute("BEGIN TRANSACTION")
        _ensure(con)
        out = fn(con)
        con.execute("COMMIT")
        return out
    except duckdb.Error as e:
        con.execute("ROLLBACK")
        fault = storage_error(e, path, "write")
        raise fault or StorageError(f"could not write to the forecast-process store {path}: {e}") from e
    finally:
        con.close()


def _read(path: Path, sql: str, params=None) -> pd.DataFrame | None:
    if not Path(path).exists():
        return None
    con = _connect(path, read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        name = sql.split(" FROM ")[1].split()[0]
        if name not in tables:
            return None
        return con.execute(sql, params or []).fetchdf()
    except duckdb.Error as e:
        raise StorageError(f"could not read the forecast-process store {path}: {e}") from e
    finally:
        con.close()


# -- calls -------------------------------------------------------------------------------------------
def record_call(path: Path, call: dict) -> dict:
    """Append one call (the forecast_calls columns; validated by the caller) and return it as stored."""
    row = {c: call.get(c) for c in CALL_COLUMNS}
    row["called_at"] = pd.Timestamp(row["called_at"]).date()
    now = datetime.now(timezone.utc).replace(tzinfo=None)

    def put(con):
        con.execute("INSERT INTO recorded_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [row["account_id"], row["contract_id"], row["called_at"], row["csm_id"], row["category"],
                     None if row["amount"] is None else float(row["amount"]), row["note"], now])
    _write(Path(path), put)
    return {**row, "called_at": row["called_at"].isoformat(), "recorded_at": now.isoformat(timespec="seconds")}


def recorded_calls(path: Path) -> pd.DataFrame:
    """The calls recorded through the API (the forecast_calls columns); empty when there are none."""
    df = _read(Path(path), "SELECT account_id, contract_id, called_at, csm_id, category, amount, note FROM "
                           "recorded_calls ORDER BY recorded_at")
    if df is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CALL_COLUMNS})
    df["called_at"] = pd.to_datetime(df["called_at"])
    return df


def all_calls(source, path: Path | None = None) -> pd.DataFrame:
    """The source's forecast_calls and the calls recorded in the store, with their due dates (recorded
    calls after the source's on the same day, so a recorded call wins a tie)."""
    mine = source_calls(source)
    rec = recorded_calls(process_db() if path is None else path)
    if rec.empty:
        return mine
    rec = calls_with_due_date(rec, source.frame("contracts"))
    return pd.concat([mine, rec[mine.columns]], ignore_index=True) if len(mine) else rec[mine.columns]


# -- the ledger ---------------------------------------------------------------------------------------
def freeze(path: Path, entry: dict) -> int:
    """Store a frozen forecast (``entry``: window, as_of, method, figures, model versions, data hash; JSON-
    able) and return its id."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)

    def put(con):
        nid = int(con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM forecast_ledger").fetchone()[0])
        w = entry["window"]
        con.execute("INSERT INTO forecast_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [nid, now, entry["as_of"], w["start"], w["end"], entry.get("method", "model"),
                     entry.get("data_hash"), json.dumps({**entry, "id": nid,
                                                         "frozen_at": now.isoformat(timespec="seconds")})])
        return nid
    return _write(Path(path), put)


def ledger_entries(path: Path) -> list[dict]:
    """Every frozen forecast, oldest first (the stored JSON)."""
    df = _read(Path(path), "SELECT entry FROM forecast_ledger ORDER BY id")
    return [] if df is None else [json.loads(e) for e in df["entry"]]

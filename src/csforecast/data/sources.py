"""Open a data source as Ibis tables. The only module that opens a connection to data.

A source is a folder of CSV or Parquet files (one file per table, named after it), a DuckDB file, or a
database URL that Ibis can open. Column names can be mapped (csforecast.toml `[column_map.TABLE]`,
`our_name = "their_name"`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import pandas as pd

from csforecast.data.contract import TABLES

_IBIS_TYPES = {"string": "string", "date": "date", "float": "float64", "int": "int64", "bool": "boolean"}


class SourceError(Exception):
    """The source cannot be opened at all (no such folder, unreadable file)."""


@dataclass
class Source:
    location: str
    con: object
    raw: dict[str, ibis.Table]                # tables as found, columns renamed to ours
    files: list[Path] = field(default_factory=list)
    _hash: str | None = None

    @property
    def names(self) -> list[str]:
        return list(self.raw)

    def has(self, name: str) -> bool:
        return name in self.raw

    def table(self, name: str) -> ibis.Table:
        """The table with our column types (call after validation: casts are not checked here)."""
        t = self.raw[name]
        spec = TABLES.get(name)
        if spec is None:
            return t
        cols = {}
        for c in spec.columns:
            if c.name in t.columns:
                cols[c.name] = t[c.name].cast(_IBIS_TYPES[c.type])
            else:  # an optional column the source does not have
                cols[c.name] = ibis.null().cast(_IBIS_TYPES[c.type])
        return t.select(**cols)

    def frame(self, name: str) -> pd.DataFrame:
        df = self.table(name).to_pandas()
        spec = TABLES.get(name)
        for c in spec.columns if spec else []:
            if c.type == "date":
                df[c.name] = pd.to_datetime(df[c.name])
        return df

    @property
    def truth_dir(self) -> Path | None:
        p = Path(self.location) / "truth"
        return p if p.is_dir() else None

    @property
    def data_hash(self) -> str:
        """A content hash of the source's tables (not of truth/), recorded with every run and score."""
        if self._hash is None:
            h = hashlib.blake2b(digest_size=12)
            if self.files:
                for f in sorted(self.files):
                    h.update(f.name.encode())
                    with open(f, "rb") as fh:
                        for chunk in iter(lambda: fh.read(1 << 22), b""):
                            h.update(chunk)
            else:
                for name, t in sorted(self.raw.items()):
                    h.update(f"{name}:{t.count().to_pyarrow().as_py()}:{list(t.columns)}".encode())
            self._hash = h.hexdigest()
        return self._hash


def open_source(location: str | Path, column_map: dict[str, dict[str, str]] | None = None) -> Source:
    loc = str(location)
    column_map = column_map or {}
    path = Path(loc)
    files: list[Path] = []
    if path.is_dir():
        con = ibis.duckdb.connect()
        con.raw_sql("SET enable_progress_bar = false")
        raw = {}
        for name in TABLES:
            for ext in ("parquet", "csv"):
                f = path / f"{name}.{ext}"
                if f.exists():
                    try:
                        raw[name] = (con.read_parquet(f, table_name=name) if ext == "parquet"
                                     else con.read_csv(f, table_name=name))
                    except Exception as e:  # noqa: BLE001 - report which file could not be read
                        raise SourceError(f"{name}: cannot read {f}: {e}") from e
                    files.append(f)
                    break
    elif path.suffix in (".duckdb", ".db") and path.exists():
        con = ibis.duckdb.connect(str(path), read_only=True)
        con.raw_sql("SET enable_progress_bar = false")
        raw = {n: con.table(n) for n in con.list_tables() if n in TABLES}
        files = [path]
    elif "://" in loc:
        try:
            con = ibis.connect(loc)
        except Exception as e:  # noqa: BLE001
            raise SourceError(f"cannot open {loc}: {e}") from e
        raw = {n: con.table(n) for n in con.list_tables() if n in TABLES}
    else:
        raise SourceError(f"no data source at {loc}: expected a folder of CSV/Parquet files, a .duckdb file "
                          "or a database URL")
    for name, mapping in column_map.items():
        if name in raw:
            present = {ours: theirs for ours, theirs in mapping.items() if theirs in raw[name].columns}
            raw[name] = raw[name].rename(present)
    return Source(loc, con, raw, files)

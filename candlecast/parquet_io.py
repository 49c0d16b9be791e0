"""Parquet files the stores share: locks, atomic writes, one DuckDB read, corrupt-file errors.

The candle store, the feature dataset and the prediction log each keep their
files in one folder per symbol. A writer holds the folder's :func:`folder_lock`,
writes each file with :func:`atomic_write_parquet` (temp file, fsync, rename)
and clears temp files a killed writer left (:func:`remove_orphans`). Reads go
through :func:`query_parquet`; a failed read is turned into a
:class:`~candlecast.errors.CorruptFileError` naming the bad file by
:func:`corrupt_file_guard`, worked out only after the read failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from candlecast.errors import CorruptFileError

log = logging.getLogger(__name__)

#: What a failed parquet read raises: DuckDB's errors, pyarrow's and the OS's.
READ_ERRORS = (duckdb.Error, pa.ArrowException, OSError)


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder/.lock`` (created) for the block.

    Serialises processes that rewrite the files of one folder; the lock dies with
    its process, so a killed writer never leaves it held.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def unreadable_file(
    files: Iterable[Path], schema: pa.Schema | None = None
) -> tuple[Path, BaseException] | None:
    """The first of ``files`` that cannot be read whole (with ``schema``'s columns), and why.

    Reads every file completely: for the error path only, never a normal read.
    """
    for path in files:
        try:
            table = pq.read_table(path)
            if schema is not None:
                table.select(schema.names).cast(schema)
        except (*READ_ERRORS, KeyError, ValueError, TypeError) as exc:
            return Path(path), exc
    return None


@contextlib.contextmanager
def corrupt_file_guard(
    files: Iterable[Path], schema: pa.Schema | None, remedy: Callable[[Path], str]
) -> Iterator[None]:
    """Re-raise a failed read of ``files`` as :class:`CorruptFileError` for the bad file.

    A failure no file explains (a bug, a vanished file) propagates unchanged.
    """
    try:
        yield
    except READ_ERRORS as exc:
        bad = unreadable_file(files, schema)
        if bad is None:
            raise
        path, cause = bad
        log.debug("unreadable %s", path, exc_info=cause)
        raise CorruptFileError(path, describe_read_error(cause), remedy(path)) from exc


def describe_read_error(exc: BaseException) -> str:
    """A read error on one line, without the path the message already names."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^Could not open Parquet input source '[^']*': ", "", text)
    return text.rstrip(".") or type(exc).__name__


def remove_orphans(folder: Path) -> None:
    """Delete temp files a killed :func:`atomic_write_parquet` left in ``folder``.

    Call it only while holding the folder's :func:`folder_lock`: then no live
    writer owns a temp file there.
    """
    for orphan in folder.glob(".*.parquet.*.tmp"):
        orphan.unlink(missing_ok=True)


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so readers see the old file or the new one, never a torn one."""
    atomic_write(path, lambda handle: pq.write_table(table, handle))


def atomic_write_text(text: str, path: Path) -> None:
    """:func:`atomic_write` of a text file (UTF-8): a JSON report, a heartbeat."""
    atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` by what ``write`` puts in a temp file beside it (fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_local = threading.local()


@contextlib.contextmanager
def duckdb_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh cursor (time zone UTC) on this process's in-memory DuckDB, closed after.

    Connecting costs ~40 ms, more than most reads here; a cursor on a database made
    once per process costs ~0.4 ms and keeps each query's results to itself.
    """
    db = getattr(_local, "db", None)
    if db is None or _local.pid != os.getpid():
        db = duckdb.connect()
        _local.db, _local.pid = db, os.getpid()
    cursor = db.cursor()
    try:
        cursor.execute("SET TimeZone='UTC'")
        yield cursor
    finally:
        cursor.close()


def query_parquet(
    files: list[Path], schema: pa.Schema, where: str, params: list, order_by: str
) -> pd.DataFrame:
    """``schema``'s columns of ``files`` matching ``where``, sorted, via DuckDB in UTC.

    The one parquet read of the stores (candles, the prediction log); callers wrap
    it in their corrupt-file guard. Files written before a nullable column was added
    to ``schema`` read as null there (:func:`conform`).
    """
    sql = (
        "SELECT * FROM read_parquet(?, hive_partitioning=false, union_by_name=true) "
        f"WHERE {where} ORDER BY {order_by}"
    )
    with duckdb_connection() as con:
        relation = con.sql(sql, params=[[str(f) for f in files], *params])
        return conform(_arrow_table(relation), schema).to_pandas()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in order; a missing nullable column is null.

    How a store gains a column without rewriting its files: old files lack it, and
    reads fill it with nulls. A missing non-nullable column is an error (``KeyError``).
    """
    columns = []
    for column in schema:
        if column.name in table.column_names:
            columns.append(table.column(column.name))
        elif column.nullable:
            columns.append(pa.nulls(table.num_rows, column.type))
        else:
            raise KeyError(f"column {column.name!r} is missing")
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


def _arrow_table(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A relation as an Arrow table across DuckDB versions (2.x renamed ``arrow()``)."""
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return fetch()

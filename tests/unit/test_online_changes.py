"""``OnlineChanges``: SQLite's own change counter tells a cache when to read again."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from candlecast.feast_store import OnlineChanges


def store_at(path: Path, kind: str = "sqlite") -> SimpleNamespace:
    """The two fields of a ``FeatureStore`` that ``OnlineChanges`` reads."""
    online = SimpleNamespace(type=kind, path=str(path))
    return SimpleNamespace(config=SimpleNamespace(online_store=online, repo_path=path.parent))


def write(path: Path, value: int) -> None:
    with sqlite3.connect(path) as conn:  # another connection, as a push or the Feast CLI
        conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
        conn.execute("INSERT INTO t VALUES (?)", (value,))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "online_store.db"
    write(path, 0)
    return path


def test_the_token_is_stable_until_another_connection_commits(db):
    changes = OnlineChanges(store_at(db))
    first = changes.token()
    assert changes.token() == first
    write(db, 1)
    second = changes.token()
    assert second != first and changes.token() == second


def test_a_rolled_back_write_changes_nothing(db):
    changes = OnlineChanges(store_at(db))
    first = changes.token()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO t VALUES (2)")
    conn.rollback()
    conn.close()
    assert changes.token() == first


def test_a_replaced_or_deleted_store_is_a_change(db, tmp_path):
    changes = OnlineChanges(store_at(db))
    first = changes.token()
    fresh = tmp_path / "new.db"
    write(fresh, 0)
    os.replace(fresh, db)  # same path, a new file (deleted and rewritten)
    assert changes.token() != first
    db.unlink()
    assert changes.token() == ("absent",)
    write(db, 3)
    assert changes.token() not in (first, ("absent",))


def test_a_relative_path_is_the_repo_s_and_other_stores_have_no_token(db):
    relative = store_at(db)
    relative.config.online_store.path = db.name
    assert OnlineChanges(relative).path == str(db)
    assert OnlineChanges(store_at(db, kind="redis")).token() is None

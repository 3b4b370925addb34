"""The service's own small state in one SQLite file: the JWT replay store and CDS card feedback.

Both must survive a restart: a token used before a crash must not be accepted again, and feedback
is a record of what clinicians did with the cards. The file is ``<LEUKOS_DATA_DIR>/state.sqlite3``
(WAL mode, one connection guarded by a lock); without a data dir (development) it is in memory.

Two tiny interfaces are used by the rest of the service, so either can move elsewhere (e.g. the
registry database) without touching the routes: :class:`ReplayStore` (``check_and_add``) and
:class:`FeedbackStore` (``add``, ``__len__``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from leukos.errors import ErrorDetail, LeukosUserError

__all__ = ["StateStore", "StateStoreUnusable", "ReplayStore", "FeedbackStore", "STATE_FILE"]

STATE_FILE = "state.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jti (iss TEXT NOT NULL, jti TEXT NOT NULL, expires_at REAL NOT NULL,
                                PRIMARY KEY (iss, jti));
CREATE INDEX IF NOT EXISTS jti_expiry ON jti (expires_at);
CREATE TABLE IF NOT EXISTS feedback (service_id TEXT NOT NULL, card TEXT NOT NULL, outcome TEXT NOT NULL,
                                     outcome_timestamp TEXT NOT NULL, item TEXT NOT NULL, received_at REAL NOT NULL,
                                     PRIMARY KEY (service_id, card, outcome, outcome_timestamp));
"""


class ReplayStore(Protocol):
    def check_and_add(self, iss: str, jti: str, expires_at: float) -> bool: ...


class FeedbackStore(Protocol):
    def add(self, service_id: str, item: dict[str, Any], *, requestor: str = "unknown") -> bool: ...

    def __len__(self) -> int: ...


class StateStoreUnusable(LeukosUserError):
    """``LEUKOS_DATA_DIR`` or its ``state.sqlite3`` cannot be used: the service refuses to start."""

    default_title = "The service's state cannot be kept"

    def __init__(self, path: Path, expected: str, fix: str):
        super().__init__(ErrorDetail(field="LEUKOS_DATA_DIR", value=str(path), expected=expected, fix=fix))


class StateStore:
    """Replay store and feedback store on one SQLite database (``path=None``: in memory).

    A data folder that cannot be created or written, or a state file that is not a SQLite database,
    is a :class:`StateStoreUnusable` (one message naming ``LEUKOS_DATA_DIR``), not a traceback.
    """

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time):
        self.path = path
        self._clock = clock
        if path is not None:
            folder = path.parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateStoreUnusable(
                    folder, f"a folder leukos can create or use; this one cannot be created "
                            f"({exc.strerror or type(exc).__name__}: a file in the way, or no permission)",
                    "give a folder path this service's user may create and write, e.g. /var/lib/leukos") from None
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", check_same_thread=False,
                                   isolation_level=None)
        try:
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            if path is None:
                raise
            raise StateStoreUnusable(
                path, f"{STATE_FILE}: the service's SQLite state (JWT replay store, CDS feedback), readable and "
                      f"writable; this one cannot be used ({type(exc).__name__}: {exc})",
                f"check the permissions of {path.parent}; if the file is damaged, move it aside (keep it for "
                "investigation) and leukos makes a new one: the feedback in it and the JWT ids already used are "
                "then not known (restart after the longest JWT lifetime)") from None
        self._lock = threading.Lock()
        self._adds = 0

    @classmethod
    def in_dir(cls, data_dir: Path | None) -> StateStore:
        return cls(None if data_dir is None else data_dir / STATE_FILE)

    # -- ReplayStore ------------------------------------------------------------------------------
    def check_and_add(self, iss: str, jti: str, expires_at: float) -> bool:
        """True if ``(iss, jti)`` is new (now remembered until ``expires_at``); False on a replay."""
        now = self._clock()
        with self._lock:
            self._adds += 1
            if self._adds % 1000 == 0:
                self._db.execute("DELETE FROM jti WHERE expires_at < ?", (now,))
            row = self._db.execute("SELECT expires_at FROM jti WHERE iss = ? AND jti = ?", (iss, jti)).fetchone()
            if row is not None and row[0] >= now:
                return False
            self._db.execute("INSERT OR REPLACE INTO jti (iss, jti, expires_at) VALUES (?, ?, ?)",
                             (iss, jti, expires_at))
            return True

    # -- FeedbackStore ----------------------------------------------------------------------------
    def add(self, service_id: str, item: dict[str, Any], *, requestor: str = "unknown") -> bool:
        """Store one card outcome; False if the same (service, card, outcome, time) was stored before.
        ``requestor`` (who sent it) is for the registry's change history; this store keeps no history."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO feedback (service_id, card, outcome, outcome_timestamp, item, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (service_id, item["card"], item["outcome"], item["outcomeTimestamp"],
                 json.dumps(item, ensure_ascii=False, sort_keys=True), self._clock()))
            return cur.rowcount == 1

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM feedback").fetchone()[0])

    def feedback(self, service_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT item FROM feedback WHERE ? IS NULL OR service_id = ? ORDER BY received_at",
                (service_id, service_id)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

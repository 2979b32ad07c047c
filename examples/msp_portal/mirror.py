"""A ticket updater that mirrors ilert's alert status into the portal's own database.

Configure it instead of the Autotask write (bidirectional sync then never
calls Autotask's API), e.g. for a portal that keeps its own ticket view::

    AUTOTASK_ILERT_TICKET_UPDATER=examples.msp_portal.mirror:SqliteTicketMirror
    PORTAL_MIRROR_DB=/var/lib/portal/mirror.sqlite3
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator

from flask_autotask_ilert.tickets import TicketUpdate, TicketUpdateError


class SqliteTicketMirror:
    """Records, per ticket, the status ilert's people asked for and who asked."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or os.environ.get("PORTAL_MIRROR_DB", "portal-mirror.sqlite3")
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS ticket_status ("
                " source TEXT, ticket INTEGER, status TEXT, action TEXT, by_whom TEXT, note TEXT,"
                " updated_at TEXT DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (source, ticket))"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection whose transaction is committed (or rolled back) and which is closed on exit.

        ``with sqlite3.connect(...)`` alone only ends the transaction; the connection
        stays open until it is collected, which Python 3.13 reports as a ResourceWarning.
        """
        db = sqlite3.connect(self.path, timeout=5)
        try:
            with db:
                yield db
        finally:
            db.close()

    def __call__(self, update: TicketUpdate) -> None:
        try:
            with self._lock, self._connect() as db:
                db.execute(
                    "INSERT INTO ticket_status (source, ticket, status, action, by_whom, note)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (source, ticket) DO UPDATE SET"
                    " status = COALESCE(excluded.status, ticket_status.status),"
                    " action = excluded.action, by_whom = excluded.by_whom, note = excluded.note,"
                    " updated_at = CURRENT_TIMESTAMP",
                    (update.source, update.ticket_id, update.status_label, update.action,
                     update.by, update.note_text),
                )
        except sqlite3.OperationalError as exc:  # locked or unreachable: worth another try
            raise TicketUpdateError(f"mirror database: {exc}", retryable=True) from exc

    def status(self, source: str, ticket: int) -> tuple[str | None, str] | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT status, action FROM ticket_status WHERE source = ? AND ticket = ?",
                (source, ticket),
            ).fetchone()
        return None if row is None else (row[0], row[1])

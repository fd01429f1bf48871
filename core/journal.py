"""The write-ahead journal: one SQLite file per mode (``{data_dir}/journal-{mode}.sqlite3``).

What it keeps: every order intent with its client_order_id (written BEFORE the request leaves,
so a crash can never leave an order at the exchange that we have no record of), the history of
each order's states with their causes, fills (deduplicated by a unique key so a replayed update
is journaled once), risk gate denials, risk events, the trading state history, flatten markers
and a small key/value store. On restart the order manager reloads the orders still working and
their cumulative fills from here, then reconciles with the venue.

Design notes:
- stdlib ``sqlite3``, WAL mode, autocommit connection; every write is its own short
  ``BEGIN IMMEDIATE`` transaction, so a kill -9 leaves either the whole row set of one write or
  none of it (SQLite's atomic commit), never half a record.
- Decimals are stored as TEXT in plain notation (never floats: money must round-trip exactly).
- Nothing secret is ever written: the journal only sees order and risk data.
- One connection, used from the engine's event-loop thread only.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from core.clock import Clock
from core.config import ConfigError
from core.denials import Denial, DenialReason
from core.journal_records import (
    DenialRecord,
    DuplicateRecord,
    FillRecord,
    FillTotals,
    FlattenMarker,
    JournalError,
    OrderStateRecord,
    RiskEvent,
)
from core.local_resources import create_private_file, ensure_private_dir, is_disk_full
from core.model import (
    Fill,
    IntentSource,
    LiquidityIndicator,
    OrderIntent,
    OrderSpec,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
    decimal_str,
)
from core.order_state import ManagedOrder, OrderState
from core.trading_state import TradingState, TradingStateChange

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ZERO = Decimal(0)

_TERMINAL_STATES = tuple(state.value for state in OrderState if state.is_terminal)

# The schema of version 1. Later versions add migrations (see ``_migrate``), never edits here.
_SCHEMA_V1 = """
CREATE TABLE schema_version (
    version INTEGER NOT NULL,
    applied_at REAL NOT NULL
);
CREATE TABLE intents (
    client_order_id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    base_size TEXT,
    quote_size TEXT,
    limit_price TEXT,
    stop_price TEXT,
    stop_direction TEXT,
    time_in_force TEXT NOT NULL,
    post_only INTEGER NOT NULL,
    end_time TEXT,
    source TEXT NOT NULL,
    reduce_only INTEGER NOT NULL,
    strategy_id TEXT,
    note TEXT NOT NULL,
    external INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE order_states (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL REFERENCES intents(client_order_id),
    order_id TEXT,
    state TEXT NOT NULL,
    cause TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX order_states_by_order ON order_states(client_order_id, id);
CREATE TABLE current_orders (
    client_order_id TEXT PRIMARY KEY REFERENCES intents(client_order_id),
    order_id TEXT,
    state TEXT NOT NULL,
    reject_code TEXT,
    reject_message TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX current_orders_by_order_id ON current_orders(order_id);
CREATE INDEX current_orders_by_state ON current_orders(state);
CREATE TABLE fills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL REFERENCES intents(client_order_id),
    order_id TEXT NOT NULL,
    trade_id TEXT,
    cumulative_size TEXT,
    product_id TEXT NOT NULL,
    side TEXT NOT NULL,
    price TEXT NOT NULL,
    size TEXT NOT NULL,
    value TEXT NOT NULL,
    commission TEXT NOT NULL,
    liquidity TEXT NOT NULL,
    trade_time TEXT,
    external INTEGER NOT NULL,
    recorded_at REAL NOT NULL,
    UNIQUE (order_id, cumulative_size)
);
CREATE UNIQUE INDEX fills_by_trade_id ON fills(trade_id) WHERE trade_id IS NOT NULL;
CREATE INDEX fills_by_client_order_id ON fills(client_order_id);
CREATE TABLE denials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT,
    product_id TEXT NOT NULL,
    side TEXT NOT NULL,
    source TEXT NOT NULL,
    strategy_id TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE risk_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE trading_states (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    state TEXT NOT NULL,
    cause TEXT NOT NULL,
    source TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE flattens (
    flatten_id TEXT PRIMARY KEY,
    detail TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT
);
CREATE TABLE key_values (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1}

KEY_LAST_FILL_TIME = "last_fill_time"


class JournalOpenError(JournalError, ConfigError):
    """The journal file cannot be used (not a database, corrupt, read-only, disk full); the
    message is one line naming the file and the fix, and the command line exits with 2."""


class JournalDiskFull(JournalError):
    """A journal write failed because the disk is full; the message starts "disk full"."""


def journal_path(data_dir: Path, mode: str) -> Path:
    """One file per mode, so paper, demo and live histories never mix."""
    return data_dir / f"journal-{mode}.sqlite3"


# --------------------------------------------------------------------------- the journal


class JournalLocked(JournalError):
    """Another engine holds the journal: two sessions on one journal would cancel each
    other's orders and interleave their records. The message is one line for the trader."""

    exit_code = 2


class JournalLock:
    """An exclusive lock on a journal for one engine (``fcntl.flock`` on ``<journal>.lock``
    beside it). The operating system drops it when the process dies, so a crash never
    leaves it behind. Readers (``doctor``, tests) open the journal without it."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> JournalLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise JournalLocked(
                f"the journal {self.path.with_suffix('')} is in use by another CryptoJ "
                f"session (pid {holder}); stop that one first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


class Journal:
    """The SQLite journal. Implements ``core.risk.TradingStateStore``."""

    def __init__(self, connection: sqlite3.Connection, path: Path, *, clock: Clock) -> None:
        self._db = connection
        self.path = path
        self._clock = clock
        self._batching = False  # inside ``batch()``: writes join its transaction
        # Told of every failed write (not duplicates) so the trader sees it, e.g. "disk full",
        # instead of only the trading block that follows. Set by the engine.
        self.on_write_failure: Callable[[JournalError], None] | None = None

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def open(cls, path: Path, *, clock: Clock) -> Journal:
        """Open (creating it and its schema if needed) the journal at ``path``."""
        try:
            ensure_private_dir(path.parent, "storage.data_dir")
        except ConfigError as exc:
            raise JournalOpenError(str(exc)) from None
        try:
            # Private: the journal shows every order and fill (0600; SQLite gives its -wal and
            # -shm files the same mode). An existing file keeps its mode.
            create_private_file(path)
            # Autocommit (isolation_level=None): we issue BEGIN/COMMIT ourselves so every write is
            # exactly one short transaction.
            connection = sqlite3.connect(path, isolation_level=None)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA foreign_keys=ON")
            # NORMAL by default: in WAL mode a process crash (kill -9) loses no committed
            # transaction at this level; only an OS crash or power cut can roll back the last
            # commits. That is acceptable for order states and fills, which reconciliation
            # recovers from the exchange's cumulative figures. Writes that the exchange cannot
            # give back (intents, trading state, flatten markers) use FULL, see ``_durable``.
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=2000")
        except (sqlite3.Error, OSError) as exc:
            raise JournalOpenError(_open_problem(path, exc)) from exc
        journal = cls(connection, path, clock=clock)
        try:
            journal._migrate()
        except JournalError as exc:
            connection.close()
            if isinstance(exc, JournalOpenError) or exc.__cause__ is None:
                raise
            raise JournalOpenError(_open_problem(path, exc.__cause__)) from exc
        return journal

    def close(self) -> None:
        self._db.close()

    @property
    def schema_version(self) -> int:
        row = self._db.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
        return int(row["v"])

    def _migrate(self) -> None:
        current = self._current_version()
        if current > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {current}, newer than this program "
                f"({SCHEMA_VERSION}); refusing to touch it"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self._write(durable=True) as db:
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, self._clock.time()),
                )

    def _current_version(self) -> int:
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
        ).fetchone()
        if exists is None:
            return 0
        row = self._db.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
        return int(row["v"] or 0)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes made inside into one commit instead of one each.

        For bursts: the kill switch marks hundreds of orders PENDING_CANCEL before it sends
        the cancels, and a commit costs about 0.2 ms. Each write stays all-or-nothing (its own
        savepoint); only when the writes reach the file changes, so keep the batch around
        synchronous code, never around a request. A durable write inside commits the batch
        first and is written on its own. Nested batches join the outer one. A failed commit
        at the end raises ``JournalError``.
        """
        if self._batching:
            yield
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            # Not batching is only slower: each write then reports its own failure.
            log.warning("journal: cannot start a batch: %r", exc)
            yield
            return
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            with self._errors_as_journal_errors():
                if self._db.in_transaction:
                    self._db.execute("COMMIT")

    @contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One short write transaction; rolled back whole on any error."""
        if self._batching:
            with self._write_in_batch(durable=durable) as db:
                yield db
            return
        with self._errors_as_journal_errors():
            if durable:
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    # SQLite rolls back by itself after some errors (a full disk): a second
                    # ROLLBACK would raise "no transaction is active" and hide the real error.
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    self._restore_normal_sync()

    @contextmanager
    def _write_in_batch(self, *, durable: bool) -> Iterator[sqlite3.Connection]:
        if durable:
            # The safety level cannot change inside a transaction: commit what the batch has
            # so far, write this one on its own, then go on batching.
            with self._errors_as_journal_errors():
                self._db.execute("COMMIT")
            self._batching = False
            try:
                with self._write(durable=True) as db:
                    yield db
            finally:
                self._batching = True
                with self._errors_as_journal_errors():
                    self._db.execute("BEGIN IMMEDIATE")
            return
        with self._errors_as_journal_errors():
            self._db.execute("SAVEPOINT journal_write")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # not when SQLite already rolled back (disk full)
                    self._db.execute("ROLLBACK TO journal_write")
                    self._db.execute("RELEASE journal_write")
                raise
            self._db.execute("RELEASE journal_write")

    @contextmanager
    def _errors_as_journal_errors(self) -> Iterator[None]:
        failure: JournalError
        try:
            yield
            return
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise DuplicateRecord(str(exc)) from exc
            failure = JournalError(f"journal write rejected: {exc}")
            cause: sqlite3.Error = exc
        except sqlite3.Error as exc:
            if is_disk_full(exc):
                failure = JournalDiskFull(
                    f"disk full: the journal {self.path} cannot be written; free some space "
                    "(trading is blocked until a write succeeds)"
                )
            else:
                failure = JournalError(f"journal write failed: {exc}")
            cause = exc
        if self.on_write_failure is not None:
            try:
                self.on_write_failure(failure)
            except Exception:  # a listener's bug must not hide the write failure
                log.exception("journal: the write-failure listener raised")
        raise failure from cause

    def _restore_normal_sync(self) -> None:
        try:
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:  # pragma: no cover - only on a closed or broken connection
            log.warning("journal: could not restore synchronous=NORMAL")

    # ----------------------------------------------------------------- intents and states

    def record_intent(
        self,
        client_order_id: str,
        intent: OrderIntent,
        *,
        external: bool = False,
        created_at: float | None = None,
    ) -> None:
        """Record an intent and its client_order_id. Call BEFORE the request is sent.

        synchronous=FULL here (not NORMAL): the row must be on the disk itself, not only in the
        OS cache, before the order leaves. With NORMAL a power cut right after the send could
        roll this commit back and leave an order at the exchange that the journal has never
        heard of, which is exactly what the write-ahead journal exists to prevent.
        """
        spec = intent.spec
        at = self._clock.time() if created_at is None else created_at
        with self._write(durable=True) as db:
            db.execute(
                """INSERT INTO intents (client_order_id, product_id, side, order_type, base_size,
                quote_size, limit_price, stop_price, stop_direction, time_in_force, post_only,
                end_time, source, reduce_only, strategy_id, note, external, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    client_order_id,
                    spec.product_id,
                    spec.side.value,
                    spec.order_type.value,
                    _dec_or_none(spec.base_size),
                    _dec_or_none(spec.quote_size),
                    _dec_or_none(spec.limit_price),
                    _dec_or_none(spec.stop_price),
                    spec.stop_direction.value if spec.stop_direction else None,
                    spec.time_in_force.value,
                    int(spec.post_only),
                    spec.end_time.isoformat() if spec.end_time else None,
                    intent.source.value,
                    int(intent.reduce_only),
                    intent.strategy_id,
                    intent.note,
                    int(external),
                    at,
                ),
            )
            # Every intent has a current state from its first moment (INITIALIZED: the request
            # may be about to leave), so a restart finds it even if the crash came next.
            db.execute(
                "INSERT INTO order_states (client_order_id, order_id, state, cause, at) "
                "VALUES (?, NULL, ?, ?, ?)",
                (client_order_id, OrderState.INITIALIZED.value, "intent recorded", at),
            )
            db.execute(
                "INSERT INTO current_orders (client_order_id, order_id, state, updated_at) "
                "VALUES (?, NULL, ?, ?)",
                (client_order_id, OrderState.INITIALIZED.value, at),
            )

    def record_order_state(self, order: ManagedOrder, cause: str) -> None:
        """Append the order's state to its history and make it the current one."""
        at = order.updated_at
        with self._write() as db:
            db.execute(
                "INSERT INTO order_states (client_order_id, order_id, state, cause, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (order.client_order_id, order.order_id, order.state.value, cause, at),
            )
            db.execute(
                """INSERT INTO current_orders (client_order_id, order_id, state, reject_code,
                reject_message, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (client_order_id) DO UPDATE SET order_id=excluded.order_id,
                state=excluded.state, reject_code=excluded.reject_code,
                reject_message=excluded.reject_message, updated_at=excluded.updated_at""",
                (
                    order.client_order_id,
                    order.order_id,
                    order.state.value,
                    order.reject_code,
                    order.reject_message,
                    at,
                ),
            )

    def order_history(self, client_order_id: str) -> list[OrderStateRecord]:
        rows = self._db.execute(
            "SELECT * FROM order_states WHERE client_order_id = ? ORDER BY id",
            (client_order_id,),
        ).fetchall()
        return [
            OrderStateRecord(
                client_order_id=row["client_order_id"],
                order_id=row["order_id"],
                state=OrderState(row["state"]),
                cause=row["cause"],
                at=row["at"],
            )
            for row in rows
        ]

    def load_orders(self) -> list[ManagedOrder]:
        """Every order not yet terminal, with its cumulative fills (for a restart)."""
        placeholders = ", ".join("?" for _ in _TERMINAL_STATES)
        rows = self._db.execute(
            f"""SELECT i.*, c.order_id, c.state, c.reject_code, c.reject_message, c.updated_at
            FROM intents i JOIN current_orders c USING (client_order_id)
            WHERE c.state NOT IN ({placeholders}) ORDER BY i.created_at, i.rowid""",
            _TERMINAL_STATES,
        ).fetchall()
        return [self._order_from_row(row) for row in rows]

    def find_order(
        self, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> ManagedOrder | None:
        """Any order the journal knows (terminal ones too), by exchange id or our id."""
        base = """SELECT i.*, c.order_id, c.state, c.reject_code, c.reject_message, c.updated_at
            FROM intents i JOIN current_orders c USING (client_order_id) WHERE """
        row = None
        if order_id:
            row = self._db.execute(base + "c.order_id = ?", (order_id,)).fetchone()
        if row is None and client_order_id:
            row = self._db.execute(base + "i.client_order_id = ?", (client_order_id,)).fetchone()
        return None if row is None else self._order_from_row(row)

    def _order_from_row(self, row: sqlite3.Row) -> ManagedOrder:
        totals = self.fill_totals(row["client_order_id"])
        return ManagedOrder(
            client_order_id=row["client_order_id"],
            intent=_intent_from_row(row),
            state=OrderState(row["state"]),
            order_id=row["order_id"],
            external=bool(row["external"]),
            filled_size=totals.size,
            filled_value=totals.value,
            total_fees=totals.fees,
            reject_code=row["reject_code"],
            reject_message=row["reject_message"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    # ----------------------------------------------------------------- fills

    def record_fill(self, record: FillRecord) -> bool:
        """Journal a fill once. Returns False (and writes nothing) if its key is already there."""
        fill = record.fill
        trade_time = fill.trade_time.isoformat() if fill.trade_time else None
        try:
            with self._write() as db:
                db.execute(
                    """INSERT INTO fills (client_order_id, order_id, trade_id, cumulative_size,
                    product_id, side, price, size, value, commission, liquidity, trade_time,
                    external, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (
                        record.client_order_id,
                        fill.order_id,
                        record.trade_id,
                        _canonical_or_none(record.cumulative_size),
                        fill.product_id,
                        fill.side.value,
                        decimal_str(fill.price),
                        decimal_str(fill.size),
                        decimal_str(record.value),
                        decimal_str(fill.commission),
                        fill.liquidity.value,
                        trade_time,
                        int(record.external),
                        self._clock.time(),
                    ),
                )
                if trade_time is not None:
                    self._set_value_if_later(db, KEY_LAST_FILL_TIME, trade_time)
        except DuplicateRecord:
            return False
        return True

    def _set_value_if_later(self, db: sqlite3.Connection, key: str, iso_time: str) -> None:
        row = db.execute("SELECT value FROM key_values WHERE key = ?", (key,)).fetchone()
        if row is not None and datetime.fromisoformat(row["value"]) >= datetime.fromisoformat(
            iso_time
        ):
            return
        self._upsert_value(db, key, iso_time)

    def fills(self, client_order_id: str | None = None, *, limit: int = 500) -> list[FillRecord]:
        """Journaled fills, newest last (all orders, or one)."""
        if client_order_id is None:
            rows = self._db.execute(
                "SELECT * FROM (SELECT * FROM fills ORDER BY id DESC LIMIT ?) ORDER BY id",
                (limit,),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM fills WHERE client_order_id = ? ORDER BY id LIMIT ?",
                (client_order_id, limit),
            ).fetchall()
        return [_fill_from_row(row) for row in rows]

    def fill_totals(self, client_order_id: str) -> FillTotals:
        """Sums of one order's journaled fills, exact (summed as Decimals, not SQL floats)."""
        rows = self._db.execute(
            "SELECT size, value, commission FROM fills WHERE client_order_id = ?",
            (client_order_id,),
        ).fetchall()
        return FillTotals(
            size=sum((Decimal(r["size"]) for r in rows), ZERO),
            value=sum((Decimal(r["value"]) for r in rows), ZERO),
            fees=sum((Decimal(r["commission"]) for r in rows), ZERO),
        )

    def last_fill_time(self) -> datetime | None:
        """The latest fill time journaled (for "fills since the last one seen" on restart).

        Fills derived from cumulative updates carry the time we saw them, which is at or after
        the trade itself: ask the venue with a margin before this time.
        """
        value = self.get_value(KEY_LAST_FILL_TIME)
        return None if value is None else datetime.fromisoformat(value)

    # ----------------------------------------------------------------- denials, risk events

    def record_denial(
        self, client_order_id: str | None, intent: OrderIntent, denial: Denial
    ) -> None:
        with self._write() as db:
            db.execute(
                """INSERT INTO denials (client_order_id, product_id, side, source, strategy_id,
                reason, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    client_order_id,
                    intent.spec.product_id,
                    intent.spec.side.value,
                    intent.source.value,
                    intent.strategy_id,
                    denial.reason.value,
                    denial.detail,
                    self._clock.time(),
                ),
            )

    def denials(self, *, limit: int = 200) -> list[DenialRecord]:
        rows = self._db.execute(
            "SELECT * FROM (SELECT * FROM denials ORDER BY id DESC LIMIT ?) ORDER BY id",
            (limit,),
        ).fetchall()
        return [
            DenialRecord(
                client_order_id=row["client_order_id"],
                product_id=row["product_id"],
                side=Side(row["side"]),
                source=IntentSource(row["source"]),
                strategy_id=row["strategy_id"],
                denial=Denial(DenialReason(row["reason"]), row["detail"]),
                at=row["at"],
            )
            for row in rows
        ]

    def record_risk_event(self, kind: str, detail: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO risk_events (kind, detail, at) VALUES (?, ?, ?)",
                (kind, detail, self._clock.time()),
            )

    def risk_events(self, *, limit: int = 200) -> list[RiskEvent]:
        rows = self._db.execute(
            "SELECT * FROM (SELECT * FROM risk_events ORDER BY id DESC LIMIT ?) ORDER BY id",
            (limit,),
        ).fetchall()
        return [RiskEvent(row["kind"], row["detail"], row["at"]) for row in rows]

    # ----------------------------------------------------------------- trading state

    def save_trading_state(self, change: TradingStateChange, *, durable: bool = True) -> None:
        # Durable by default: a HALTED latch lost to a power cut would let trading resume after
        # a restart. The kill switch passes durable=False to latch in well under a millisecond
        # (the row is in the WAL, safe from a process crash) and calls sync() right after.
        with self._write(durable=durable) as db:
            db.execute(
                "INSERT INTO trading_states (state, cause, source, at) VALUES (?, ?, ?, ?)",
                (change.state.value, change.cause, change.source, change.at),
            )

    def sync(self) -> None:
        """Make every committed write durable (a power cut included): checkpoint the WAL."""
        with self._errors_as_journal_errors():
            self._db.execute("PRAGMA wal_checkpoint(FULL)")

    def load_trading_state(self) -> TradingStateChange | None:
        row = self._db.execute("SELECT * FROM trading_states ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return TradingStateChange(
            TradingState(row["state"]), row["cause"], row["source"], row["at"]
        )

    def trading_state_history(self, *, limit: int = 100) -> list[TradingStateChange]:
        rows = self._db.execute(
            "SELECT * FROM (SELECT * FROM trading_states ORDER BY id DESC LIMIT ?) ORDER BY id",
            (limit,),
        ).fetchall()
        return [
            TradingStateChange(TradingState(r["state"]), r["cause"], r["source"], r["at"])
            for r in rows
        ]

    # ----------------------------------------------------------------- flatten markers

    def record_flatten_started(self, flatten_id: str, detail: str) -> None:
        """Mark a flatten as started, durably, before its first order leaves."""
        with self._write(durable=True) as db:
            db.execute(
                "INSERT INTO flattens (flatten_id, detail, started_at) VALUES (?, ?, ?)",
                (flatten_id, detail, self._clock.time()),
            )

    def record_flatten_finished(self, flatten_id: str, detail: str) -> None:
        """Close a flatten (done, or interrupted and reported). The first outcome stays."""
        with self._write(durable=True) as db:
            db.execute(
                "UPDATE flattens SET finished_at = ?, outcome = ? WHERE flatten_id = ? "
                "AND finished_at IS NULL",
                (self._clock.time(), detail, flatten_id),
            )

    def unfinished_flatten(self) -> str | None:
        """The id of the latest flatten started and never finished (a crash during it).

        Reported at start-up and then closed with ``record_flatten_finished``; never re-fired.
        """
        row = self._db.execute(
            "SELECT flatten_id FROM flattens WHERE finished_at IS NULL "
            "ORDER BY started_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return None if row is None else str(row["flatten_id"])

    def flattens(self, *, limit: int = 50) -> list[FlattenMarker]:
        rows = self._db.execute(
            "SELECT * FROM (SELECT *, rowid AS r FROM flattens ORDER BY rowid DESC LIMIT ?) "
            "ORDER BY r",
            (limit,),
        ).fetchall()
        return [_flatten_from_row(row) for row in rows]

    # ----------------------------------------------------------------- key/value

    def get_value(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM key_values WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_value(self, key: str, value: str) -> None:
        with self._write() as db:
            self._upsert_value(db, key, value)

    def _upsert_value(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO key_values (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
            (key, value, self._clock.time()),
        )

    # ----------------------------------------------------------------- checks

    def integrity_problems(self) -> list[str]:
        """SQLite's own integrity and foreign-key checks; empty when the file is sound."""
        problems: list[str] = []
        result = self._db.execute("PRAGMA integrity_check").fetchall()
        messages = [str(row[0]) for row in result]
        if messages != ["ok"]:
            problems.extend(messages)
        problems.extend(
            f"foreign key: {tuple(row)}"
            for row in self._db.execute("PRAGMA foreign_key_check").fetchall()
        )
        return problems


# --------------------------------------------------------------------------- row helpers


def _dec_or_none(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


def _canonical_or_none(value: Decimal | None) -> str | None:
    # One spelling per number ("0.5", never "0.50"), or the unique key would let a replay in.
    return None if value is None else decimal_str(value.normalize())


def _decimal_or_none(text: Any) -> Decimal | None:
    return None if text is None else Decimal(text)


def _intent_from_row(row: sqlite3.Row) -> OrderIntent:
    spec = OrderSpec(
        product_id=row["product_id"],
        side=Side(row["side"]),
        order_type=OrderType(row["order_type"]),
        base_size=_decimal_or_none(row["base_size"]),
        quote_size=_decimal_or_none(row["quote_size"]),
        limit_price=_decimal_or_none(row["limit_price"]),
        stop_price=_decimal_or_none(row["stop_price"]),
        stop_direction=StopDirection(row["stop_direction"]) if row["stop_direction"] else None,
        time_in_force=TimeInForce(row["time_in_force"]),
        post_only=bool(row["post_only"]),
        end_time=datetime.fromisoformat(row["end_time"]) if row["end_time"] else None,
    )
    return OrderIntent(
        spec=spec,
        source=IntentSource(row["source"]),
        reduce_only=bool(row["reduce_only"]),
        strategy_id=row["strategy_id"],
        note=row["note"],
    )


def _fill_from_row(row: sqlite3.Row) -> FillRecord:
    cumulative = _decimal_or_none(row["cumulative_size"])
    trade_id = row["trade_id"]
    fill = Fill(
        trade_id=trade_id
        if trade_id is not None
        else f"{row['order_id']}:{row['cumulative_size']}",
        order_id=row["order_id"],
        product_id=row["product_id"],
        side=Side(row["side"]),
        price=Decimal(row["price"]),
        size=Decimal(row["size"]),
        commission=Decimal(row["commission"]),
        liquidity=LiquidityIndicator(row["liquidity"]),
        trade_time=datetime.fromisoformat(row["trade_time"]) if row["trade_time"] else None,
    )
    return FillRecord(
        client_order_id=row["client_order_id"],
        fill=fill,
        value=Decimal(row["value"]),
        cumulative_size=cumulative,
        trade_id=trade_id,
        external=bool(row["external"]),
    )


def _flatten_from_row(row: sqlite3.Row) -> FlattenMarker:
    return FlattenMarker(
        flatten_id=row["flatten_id"],
        detail=row["detail"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=row["outcome"],
    )


def _open_problem(path: Path, exc: BaseException) -> str:
    """One line: what is wrong with the journal file at ``path`` and what to do."""
    text = str(exc)
    if is_disk_full(exc):
        return f"disk full: cannot write the journal {path}; free some space and start again"
    if "not a database" in text:
        return (
            f"journal {path} is not a database (another file has its name); move it away "
            "and start again (a new journal is created)"
        )
    if "malformed" in text or "corrupt" in text:
        return (
            f"journal {path} is corrupt ({text}); move it away (keep it to inspect) and start "
            "again: a new journal is created and open orders are reconciled from the exchange"
        )
    if "readonly" in text or "read-only" in text or isinstance(exc, PermissionError):
        return (
            f"journal {path} cannot be written (read-only); run: chmod u+w {path} "
            f"{path.parent}, or set storage.data_dir to a writable directory"
        )
    if "unable to open" in text:
        return (
            f"journal {path} cannot be opened ({text}); check that {path.parent} is a "
            "writable directory (storage.data_dir)"
        )
    return f"journal {path} cannot be opened ({text}); move it away or set storage.data_dir"

"""Bad local resources: the data directory, the log file, the journal file, the sim's address,
and a full disk. Each must give one line naming it and the fix (``ConfigError``, which the
command line prints with exit code 2), and whatever CryptoJ creates must be private.

The command-line side (the real ``cryptoj`` in a subprocess) is in
tests/reliability/test_bad_inputs.py.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.config import ConfigError, load_settings
from core.engine import Engine
from core.journal import Journal, JournalDiskFull, JournalOpenError
from core.journal_records import JournalError
from core.local_resources import (
    check_listen_address,
    ensure_private_dir,
    ensure_private_file,
    is_disk_full,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at its default start."""
    return ManualClock()


# ------------------------------------------------------------------ created private


def test_a_new_data_dir_is_0700_with_a_0600_journal(tmp_path: Path, clock: ManualClock) -> None:
    data_dir = tmp_path / "new" / "data"
    journal = Journal.open(data_dir / "journal-paper.sqlite3", clock=clock)
    try:
        journal.set_value("k", "v")  # the -wal and -shm files exist once written
        assert mode_of(data_dir) == 0o700
        files = sorted(data_dir.iterdir())
        assert [f.name for f in files] == [
            "journal-paper.sqlite3",
            "journal-paper.sqlite3-shm",
            "journal-paper.sqlite3-wal",
        ]
        assert {f.name: mode_of(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        journal.close()


def test_existing_files_and_dirs_keep_their_mode(tmp_path: Path, clock: ManualClock) -> None:
    """Never widened; narrowing what the owner chose is not ours to do either."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o750)
    data_dir.chmod(0o750)
    path = data_dir / "journal-paper.sqlite3"
    Journal.open(path, clock=clock).close()
    path.chmod(0o640)
    Journal.open(path, clock=clock).close()
    assert mode_of(path) == 0o640
    assert mode_of(data_dir) == 0o750
    log = tmp_path / "cryptoj.log"
    log.write_text("old line\n")
    log.chmod(0o644)
    ensure_private_file(log, "log.file")
    assert mode_of(log) == 0o644 and log.read_text() == "old line\n"


def test_a_new_log_file_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "cryptoj.log"
    ensure_private_file(log, "log.file")
    assert mode_of(log) == 0o600 and mode_of(log.parent) == 0o700


# ------------------------------------------------------------------ one line naming it


@pytest.mark.parametrize(
    ("layout", "words"),
    [
        ("file", "it is a file, not a directory"),
        ("under a file", "cannot create the directory (Not a directory)"),
    ],
)
def test_a_data_dir_that_cannot_be_used_is_one_line(
    tmp_path: Path, layout: str, words: str
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    path = blocker if layout == "file" else blocker / "data"
    with pytest.raises(ConfigError) as raised:
        ensure_private_dir(path, "storage.data_dir")
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"config key 'storage.data_dir' = '{path}'")
    assert words in message


@pytest.mark.skipif(IS_ROOT, reason="root writes to any directory")
def test_a_read_only_data_dir_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable; run: chmod u\\+rwx"):
            ensure_private_dir(data_dir, "storage.data_dir")
    finally:
        data_dir.chmod(0o700)


@pytest.mark.parametrize("layout", ["directory", "under a file"])
def test_a_log_file_that_cannot_be_written_is_one_line(tmp_path: Path, layout: str) -> None:
    blocker = tmp_path / "blocker"
    if layout == "directory":
        blocker.mkdir()
        path = blocker
    else:
        blocker.write_text("x")
        path = blocker / "cryptoj.log"
    with pytest.raises(ConfigError) as raised:
        ensure_private_file(path, "log.file")
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"config key 'log.file' = '{path}'")


def _not_a_database(path: Path) -> None:
    path.write_text("these are my notes, not a journal\n" * 100)


def _corrupt(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100)
    data = bytearray(path.read_bytes())
    data[100:4000] = b"\xff" * 3900  # the schema page
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "words"),
    [(_not_a_database, "is not a database"), (_corrupt, "is corrupt")],
    ids=["not a database", "corrupt"],
)
def test_a_journal_file_that_is_not_a_journal_is_one_line(
    tmp_path: Path, clock: ManualClock, damage: object, words: str
) -> None:
    path = tmp_path / "journal-paper.sqlite3"
    damage(path)  # type: ignore[operator]
    before = path.read_bytes()
    with pytest.raises(JournalOpenError) as raised:
        Journal.open(path, clock=clock)
    message = str(raised.value)
    assert isinstance(raised.value, ConfigError)  # the command line's exit code 2
    assert "\n" not in message and str(path) in message and words in message
    assert "move it away" in message
    assert path.read_bytes() == before  # nothing of it was lost


@pytest.mark.skipif(IS_ROOT, reason="root writes to read-only files")
def test_a_read_only_journal_is_one_line(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "journal-paper.sqlite3"
    Journal.open(path, clock=clock).close()
    for leftover in tmp_path.glob("journal-paper.sqlite3-*"):
        leftover.unlink()
    path.chmod(0o400)
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(JournalOpenError, match=r"read-only|cannot be written|not writable"):
            Journal.open(path, clock=clock)
    finally:
        tmp_path.chmod(0o700)
        path.chmod(0o600)


def test_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as raised:
            check_listen_address("127.0.0.1", port)
    message = str(raised.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{port} (Address already in use)")
    assert "sim.port" in message and "\n" not in message


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("192.0.2.1", "not an address of this machine"),  # TEST-NET-1, never local
        ("no-such-host.invalid", "'sim.host' = 'no-such-host.invalid': not a known host"),
    ],
)
def test_a_host_that_cannot_be_listened_on_is_one_line(host: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        check_listen_address(host, 0)


# ------------------------------------------------------------------ a full disk


def _fill_the_disk(journal: Journal) -> JournalError:
    """Cap the database at its size (SQLite then answers SQLITE_FULL, as on a full disk) and
    write until a write fails."""
    db = journal._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    for index in range(1000):
        try:
            journal.set_value(f"filler-{index}", "x" * 2000)
        except JournalError as exc:
            return exc
    raise AssertionError("the capped journal never filled")


def test_a_full_disk_is_said_plainly(tmp_path: Path, clock: ManualClock) -> None:
    journal = Journal.open(tmp_path / "journal-paper.sqlite3", clock=clock)
    seen: list[JournalError] = []
    journal.on_write_failure = seen.append
    try:
        failure = _fill_the_disk(journal)
    finally:
        journal.close()
    assert isinstance(failure, JournalDiskFull) and is_disk_full(failure)
    assert str(failure).startswith("disk full: ")
    assert seen == [failure]


def test_disk_full_errnos_are_recognised() -> None:
    import errno

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


@pytest.fixture
def paper_engine(tmp_path: Path, clock: ManualClock) -> Iterator[Engine]:
    """A paper engine with no market feed (no network) and its journal in a temp dir."""
    settings = load_settings(
        None,
        overrides={"mode": "paper", "storage": {"data_dir": str(tmp_path)}},
        environ={"HOME": "/nonexistent-home"},
    )
    engine = Engine(settings, None, clock=clock, mode="paper", market_feed=lambda market: None)
    yield engine
    engine.journal.close()


def test_the_engine_shows_a_full_disk_in_its_events_once(
    paper_engine: Engine, clock: ManualClock
) -> None:
    """The console's event log and headless mode's ``log`` lines show the engine's events:
    "disk full" must be there, not only the trading block ("RECONCILING ... wait")."""

    def disk_lines() -> list[str]:
        return [
            event.text
            for event in paper_engine.snapshot().events
            if event.level == "error" and event.text.startswith("disk full: ")
        ]

    _fill_the_disk(paper_engine.journal)
    assert len(disk_lines()) == 1
    with pytest.raises(JournalDiskFull):
        paper_engine.journal.set_value("again", "x" * 2000)
    assert len(disk_lines()) == 1  # a full disk fails every write: one line is enough
    clock.advance(31.0)
    with pytest.raises(JournalDiskFull):
        paper_engine.journal.set_value("later", "x" * 2000)
    assert len(disk_lines()) == 2  # still full a while later: said again

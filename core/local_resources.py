"""Checks on this machine's resources that the settings point at: the data directory, the log
file, the address the simulated exchange listens on, and whether a failed write means a full
disk.

Each check raises ``ConfigError`` with one line naming the setting, the value and the fix, so
the command line prints it and exits with code 2 instead of a traceback. Files and directories
CryptoJ creates are private (0600 / 0700): journals and logs show what the trader holds and
does. Existing ones keep their mode: never widened, and narrowing is the owner's decision.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
from pathlib import Path

from core.config import ConfigError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

# errno values that mean "no space left": a full disk or an exhausted quota.
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def ensure_private_dir(path: Path, key: str) -> Path:
    """``path`` as a writable directory, created 0700 (with its parents) if missing.

    ``key`` names the setting in the message, e.g. ``storage.data_dir``.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"config key '{key}' = '{path}': it is a file, not a directory; point it at a "
            "directory (it is created if missing)"
        )
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"config key '{key}' = '{path}': cannot create the directory ({_reason(exc)}); "
            "point it at a directory you can write"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"config key '{key}' = '{path}': the directory is not writable; "
            f"run: chmod u+rwx {path}, or point it at a directory you can write"
        )
    return path


def ensure_private_file(path: Path, key: str) -> Path:
    """``path`` as a file this process can append to, created 0600 (its directory 0700)."""
    if path.is_dir():
        raise ConfigError(f"config key '{key}' = '{path}': it is a directory; give a file name")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"config key '{key}' = '{path}': '{parent}' is a file, not a directory")
    try:
        parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise ConfigError(
            f"config key '{key}' = '{path}': cannot write it ({_reason(exc)}); "
            "point it at a file you can write"
        ) from None
    os.close(descriptor)
    return path


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (an existing file is left
    alone). For files another library opens by name, e.g. SQLite's database file, whose
    companions (-wal, -shm) SQLite then creates with the same mode."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)


def check_listen_address(host: str, port: int, *, what: str = "sim") -> None:
    """Raise ``ConfigError`` if ``host``:``port`` cannot be listened on (port 0: any port).

    A check before starting, for a clear message; the server still handles losing the race.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(
            f"config key '{what}.host' = {host!r}: not a known host name or address "
            f"({exc.strerror}); use an IP address such as 127.0.0.1"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(listen_error_message(host, port, exc, what=what)) from None


def listen_error_message(host: str, port: int, exc: OSError, *, what: str = "sim") -> str:
    """One line for a failed bind or listen on ``host``:``port``."""
    if exc.errno == errno.EADDRINUSE:
        fix = f"another program uses port {port}; pick another {what}.port (0 picks a free one)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        fix = f"{host} is not an address of this machine; use 127.0.0.1"
    elif exc.errno == errno.EACCES:
        fix = f"ports below 1024 need privileges; pick another {what}.port (0 picks a free one)"
    else:
        fix = f"check {what}.host and {what}.port"
    return f"cannot listen on {host}:{port} ({_reason(exc)}): {fix}"


def is_disk_full(exc: BaseException) -> bool:
    """Whether a failed write failed because the disk (or the user's quota) is full."""
    if isinstance(exc, OSError):
        return exc.errno in _DISK_FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    cause = exc.__cause__
    return cause is not None and is_disk_full(cause)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__

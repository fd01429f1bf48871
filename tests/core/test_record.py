"""Recording a feed: RecordingSink on its own, record_feed and ``cryptoj record`` over loopback."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from core.clock import ManualClock
from core.coinbase.auth import generate_demo_key
from core.coinbase.stream import Subscription
from core.config import ConfigError, ExchangeSettings, Settings
from core.record import (
    RecordingSink,
    RecordingSummary,
    record_feed,
    subscriptions_for,
)
from cryptoj_tui.commands import record as record_command
from tests.core.coinbase.ws_server import ScriptedWsServer, ServerSide, unused_port

WAIT_S = 5.0
# Reconnect after ~1 ms instead of up to 250 ms, so a reconnect test does not wait.
FAST_RECONNECT = ExchangeSettings(reconnect_initial_s=0.001, reconnect_max_s=0.001)


class FailingFile(io.BytesIO):
    """A file whose writes (or flushes) fail like a full disk."""

    def __init__(self, *, fail_write: bool = True, fail_flush: bool = False) -> None:
        super().__init__()
        self._fail_write = fail_write
        self._fail_flush = fail_flush

    def write(self, data: Any) -> int:
        if self._fail_write:
            raise OSError(28, "No space left on device")
        return super().write(data)

    def flush(self) -> None:
        if self._fail_flush:
            raise OSError(28, "No space left on device")


class WatchedFile(io.BytesIO):
    """An in-memory file that lets a test await the first write."""

    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()

    def write(self, data: Any) -> int:
        self.written.set()
        return super().write(data)


@pytest.fixture
async def server() -> AsyncIterator[ScriptedWsServer]:
    """A scripted WebSocket server on 127.0.0.1, closed after the test."""
    async with ScriptedWsServer() as running:
        yield running


async def subscribed(server: ScriptedWsServer, count: int) -> tuple[ServerSide, list[Any]]:
    """The next connection and its first ``count`` (subscribe) messages."""
    side = await server.accept()
    return side, await side.receive_json(count)


# ---------------------------------------------------------------- RecordingSink


def test_sink_writes_each_frame_unchanged_on_its_own_line() -> None:
    out = io.BytesIO()
    sink = RecordingSink(out, clock=ManualClock())
    frames: list[str | bytes] = ['{"a": 1,  "b":"é"}', b'{"binary":true}', "{}"]
    for frame in frames:
        sink.on_frame(frame)
    assert out.getvalue() == '{"a": 1,  "b":"é"}\n{"binary":true}\n{}\n'.encode()
    assert sink.messages == 3
    assert sink.bytes_written == len(out.getvalue())
    assert sink.rewritten == 0


def test_a_frame_with_a_newline_is_compacted_onto_one_line() -> None:
    out = io.BytesIO()
    sink = RecordingSink(out, clock=ManualClock())
    sink.on_frame('{\n  "channel": "l2_data",\n  "text": "line\\nbreak"\n}')
    sink.on_frame(b"not json\nat all")
    lines = out.getvalue().split(b"\n")
    assert lines == [b'{"channel":"l2_data","text":"line\\nbreak"}', b'"not json\\nat all"', b""]
    assert orjson.loads(lines[0]) == {"channel": "l2_data", "text": "line\nbreak"}
    assert sink.rewritten == 2


def test_sink_flushes_after_the_interval_and_on_disconnect(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "feed.jsonl"
    with path.open("wb", buffering=1024 * 1024) as out:
        sink = RecordingSink(out, clock=clock, flush_interval_s=1.0)
        sink.on_frame("first")
        assert path.read_bytes() == b""  # still in the buffer
        clock.advance(1.0)
        sink.on_frame("second")
        assert path.read_bytes() == b"first\nsecond\n"
        sink.on_frame("third")
        assert path.read_bytes() == b"first\nsecond\n"
        sink.on_disconnected("server closed")
        assert path.read_bytes() == b"first\nsecond\nthird\n"


def test_sink_finishes_once_at_max_messages_and_ignores_the_rest() -> None:
    out = io.BytesIO()
    finished: list[bool] = []
    sink = RecordingSink(
        out, clock=ManualClock(), max_messages=2, on_finished=lambda: finished.append(True)
    )
    for frame in ("1", "2", "3", "4"):
        sink.on_frame(frame)
    assert out.getvalue() == b"1\n2\n"
    assert finished == [True]
    assert sink.finished
    without_callback = RecordingSink(io.BytesIO(), clock=ManualClock(), max_messages=1)
    without_callback.on_frame("only")
    assert without_callback.finished


def test_a_write_error_ends_the_recording_without_raising() -> None:
    finished: list[bool] = []
    sink = RecordingSink(
        FailingFile(), clock=ManualClock(), on_finished=lambda: finished.append(True)
    )
    sink.on_frame("lost")
    sink.on_frame("ignored")
    sink.flush()  # no second error after the first
    assert sink.messages == 0
    assert isinstance(sink.write_error, OSError)
    assert finished == [True]


def test_a_flush_error_ends_the_recording_without_raising() -> None:
    finished: list[bool] = []
    sink = RecordingSink(
        FailingFile(fail_write=False, fail_flush=True),
        clock=ManualClock(),
        max_messages=1,
        on_finished=lambda: finished.append(True),
    )
    sink.on_frame("kept in memory")  # the last message: the recording is finished
    sink.on_disconnected("gone")  # its flush fails
    assert isinstance(sink.write_error, OSError)
    assert finished == [True]  # finished once, not again for the error


def test_max_messages_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_messages"):
        RecordingSink(io.BytesIO(), clock=ManualClock(), max_messages=0)


def test_subscriptions_for_gives_products_to_the_channels_that_take_them() -> None:
    assert subscriptions_for(["level2", "heartbeats", "futures_balance_summary"], ["BTC-USD"]) == [
        Subscription("level2", ("BTC-USD",)),
        Subscription("heartbeats"),
        Subscription("futures_balance_summary"),
    ]
    with pytest.raises(ValueError, match="unknown channel 'heartbeat'"):
        subscriptions_for(["heartbeat"], ["BTC-USD"])


def test_summary_describes_itself_and_tells_failure() -> None:
    clean = RecordingSummary(12, 2_500_000, 0, 3.0, None, None)
    assert clean.describe() == "recorded 12 messages (2.50 MB) in 3.0 s; reconnects: 0"
    assert not clean.failed
    reconnected = RecordingSummary(
        12, 2_500_000, 1, 3.0, "closed by the server with code 1001", None
    )
    assert reconnected.describe().endswith(
        "; reconnects: 1; last connection error: closed by the server with code 1001"
    )
    assert not reconnected.failed  # it recorded, the error was survived
    never_connected = RecordingSummary(0, 0, 0, 1.0, "ConnectionRefusedError: refused", None)
    assert never_connected.failed
    assert never_connected.describe().startswith("recorded 0 messages")
    offline = RecordingSummary(0, 0, 0, 9.0, "refused", None, failed_tries=7, connected=False)
    assert "never connected (7 connection tries failed)" in offline.describe()
    assert "reconnects: 0" not in offline.describe()
    assert offline.failed
    dropped = RecordingSummary(5, 50, 1, 9.0, "refused", None, failed_tries=1)
    assert "reconnects: 1; 1 connection try failed since the last connection" in dropped.describe()
    disk_full = RecordingSummary(3, 30, 0, 0.5, None, "disk full")
    assert disk_full.describe().endswith("; write error: disk full")
    assert disk_full.failed


# ---------------------------------------------------------------- record_feed over loopback


async def test_a_recording_equals_the_frames_sent_line_by_line_across_a_reconnect(
    server: ScriptedWsServer,
) -> None:
    frames = [
        orjson.dumps({"channel": "l2_data", "sequence_num": n, "events": [{"n": n}]}).decode()
        for n in range(20)
    ] + ['{"channel": "heartbeats",  "spacing": "kept"}']
    out = io.BytesIO()
    recording = asyncio.create_task(
        record_feed(
            out,
            url=server.url,
            subscriptions=[Subscription("level2", ("BTC-USD",))],
            clock=ManualClock(),
            exchange=FAST_RECONNECT,
            max_messages=len(frames),
        )
    )
    first, subscribes = await subscribed(server, 2)
    assert [message["channel"] for message in subscribes] == ["level2", "heartbeats"]
    for frame in frames[:10]:
        await first.send(frame)
    await first.close(1001, "going away")
    second, _ = await subscribed(server, 2)
    for frame in frames[10:]:
        await second.send(frame)
    async with asyncio.timeout(WAIT_S):
        summary = await recording

    assert out.getvalue().decode().split("\n") == [*frames, ""]
    assert summary.messages == len(frames)
    assert summary.bytes_written == len(out.getvalue())
    assert summary.reconnects == 1
    assert summary.write_error is None
    await second.wait_closed()  # the recorder hung up once it had enough


async def test_record_feed_stops_when_told_and_after_its_duration(
    server: ScriptedWsServer,
) -> None:
    stop = asyncio.Event()
    out = WatchedFile()
    recording = asyncio.create_task(
        record_feed(
            out,
            url=server.url,
            subscriptions=[Subscription("ticker", ("BTC-USD",))],
            clock=ManualClock(),
            stop=stop,
        )
    )
    side, _ = await subscribed(server, 2)
    await side.send("one")
    async with asyncio.timeout(WAIT_S):
        await out.written.wait()
    stop.set()
    async with asyncio.timeout(WAIT_S):
        summary = await recording
    assert summary.messages == 1
    assert out.getvalue() == b"one\n"
    await side.wait_closed()

    quiet = await asyncio.wait_for(
        record_feed(
            io.BytesIO(),
            url=server.url,
            subscriptions=[Subscription("ticker", ("BTC-USD",))],
            clock=ManualClock(),
            duration_s=0.05,
        ),
        WAIT_S,
    )
    assert quiet.messages == 0


# ---------------------------------------------------------------- cryptoj record


def parse(*argv: str) -> argparse.Namespace:
    """``cryptoj record ARGV`` parsed by a parser holding only this command (the way
    cryptoj_tui.cli registers it), so other commands' imports cannot break these tests."""
    parser = argparse.ArgumentParser(prog="cryptoj")
    record_command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["record", *argv])


async def test_cli_records_until_max_messages_and_exits_0(
    server: ScriptedWsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "btc.jsonl"
    args = parse(
        "--product", "BTC-USD", "--product", "ETH-USD", "--out", str(out),
        "--channels", "level2,market_trades", "--max-messages", "3", "--url", server.url,
    )  # fmt: skip
    settings = Settings()
    # The command runs its own event loop, so it goes to a thread; the server stays on ours.
    command = asyncio.create_task(asyncio.to_thread(args.handler, args, settings))
    side, subscribes = await subscribed(server, 3)
    assert subscribes == [
        {"type": "subscribe", "channel": "level2", "product_ids": ["BTC-USD", "ETH-USD"]},
        {"type": "subscribe", "channel": "market_trades", "product_ids": ["BTC-USD", "ETH-USD"]},
        {"type": "subscribe", "channel": "heartbeats", "product_ids": []},
    ]
    frames = ['{"channel":"subscriptions"}', '{"channel":"l2_data"}', '{"channel":"heartbeats"}']
    for frame in frames:
        await side.send(frame)
    async with asyncio.timeout(WAIT_S):
        exit_code = await command
    assert exit_code == 0
    assert out.read_text().splitlines() == frames
    printed = capsys.readouterr()
    assert "recorded 3 messages" in printed.out
    assert "recording level2,market_trades,heartbeats for BTC-USD,ETH-USD" in printed.err


async def test_cli_signs_every_subscribe_when_credentials_are_configured(
    server: ScriptedWsServer, tmp_path: Path
) -> None:
    key_name, private_key, public_key = generate_demo_key("ES256")
    settings = Settings(credentials={"key_name": key_name, "private_key": private_key})
    args = parse("--out", str(tmp_path / "x.jsonl"), "--max-messages", "1", "--url", server.url)
    command = asyncio.create_task(asyncio.to_thread(args.handler, args, settings))
    side, subscribes = await subscribed(server, 2)
    assert [message["product_ids"] for message in subscribes] == [
        list(settings.market.products),  # no --product: the configured products
        [],
    ]
    tokens = [message["jwt"] for message in subscribes]
    assert len(set(tokens)) == 2
    for token in tokens:
        claims = jwt.decode(token, public_key, algorithms=["ES256"])
        assert claims["sub"] == key_name and "uri" not in claims
    await side.send("{}")
    async with asyncio.timeout(WAIT_S):
        assert await command == 0


def test_cli_refuses_to_overwrite_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "keep.jsonl"
    out.write_text("precious\n")
    args = parse("--out", str(out), "--url", "ws://127.0.0.1:9")
    assert args.handler(args, Settings()) == 2
    assert out.read_text() == "precious\n"
    assert "--overwrite" in capsys.readouterr().err


def test_cli_reports_an_unwritable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--out", str(tmp_path / "missing" / "x.jsonl"), "--url", "ws://127.0.0.1:9")
    assert args.handler(args, Settings()) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1 and "cannot write" in lines[0] and "x.jsonl" in lines[0]


def test_cli_rejects_a_broken_key_as_a_configuration_error(tmp_path: Path) -> None:
    settings = Settings(credentials={"key_name": "organizations/x/apiKeys/y", "private_key": "no"})
    args = parse("--out", str(tmp_path / "x.jsonl"), "--url", "ws://127.0.0.1:9")
    with pytest.raises(ConfigError, match="credentials"):
        args.handler(args, settings)
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--out", "x", "--channels", "level2,heartbeat"],
        ["--out", "x", "--channels", " , "],
        ["--out", "x", "--product", "btc-usd"],
        ["--out", "x", "--duration", "0"],
        ["--out", "x", "--duration", "soon"],
        ["--out", "x", "--max-messages", "0"],
        ["--out", "x", "--max-messages", "1.5"],
        ["--out", "x", "--url", "https://example.com"],
        ["--product", "BTC-USD"],
    ],
)
def test_cli_rejects_bad_arguments_with_usage_exit_code(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        parse(*argv)
    assert raised.value.code == 2


def test_cli_parses_a_full_command_line() -> None:
    args = parse(
        "--product", "BTC-USD", "--out", "f.jsonl", "--channels", "level2, ticker,level2",
        "--duration", "2.5", "--max-messages", "10", "--url", "wss://example.com/ws",
        "--overwrite",
    )  # fmt: skip
    assert args.products == ["BTC-USD"]
    assert args.channels == ("level2", "ticker")
    assert (args.duration, args.max_messages, args.url, args.overwrite) == (
        2.5,
        10,
        "wss://example.com/ws",
        True,
    )
    assert parse("--out", "f.jsonl").channels == ("level2",)


def test_cli_stops_cleanly_on_ctrl_c(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In the main thread the command's SIGINT handler ends the recording: the socket is
    closed with a close frame, the file is flushed, the summary printed, the exit code 0."""
    out = tmp_path / "interrupted.jsonl"
    ready = threading.Event()
    seen: dict[str, Any] = {}

    def serve_then_interrupt() -> None:
        async def main() -> None:
            async with ScriptedWsServer() as local:
                seen["url"] = local.url
                ready.set()
                # The command installs its signal handlers before it connects, so once the
                # subscribes are here a SIGINT reaches the handler.
                side, _ = await subscribed(local, 2)
                os.kill(os.getpid(), signal.SIGINT)
                await side.wait_closed()
                seen["close_code"] = side.close_code

        asyncio.run(main())

    thread = threading.Thread(target=serve_then_interrupt, daemon=True)
    thread.start()
    assert ready.wait(WAIT_S)
    args = parse("--out", str(out), "--url", seen["url"])
    assert args.handler(args, Settings()) == 0
    thread.join(WAIT_S)
    assert seen["close_code"] == 1000
    assert out.exists()
    assert "recorded 0 messages" in capsys.readouterr().out


def test_cli_exits_1_when_it_never_connected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = unused_port()
    args = parse("--out", str(tmp_path / "x.jsonl"), "--url", f"ws://127.0.0.1:{port}")
    args.duration = 0.2
    assert args.handler(args, Settings()) == 1
    assert "last connection error: ConnectionRefusedError" in capsys.readouterr().out


async def test_offline_the_summary_counts_every_failed_try() -> None:
    """A server that accepts and hangs up at once: each try fails; the summary says how many
    (``reconnects: 0`` alone after seven refused tries hid that it never connected)."""
    accepted = 0
    stop = asyncio.Event()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()
        if accepted >= 5:
            stop.set()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        async with asyncio.timeout(WAIT_S):
            summary = await record_feed(
                io.BytesIO(),
                url=f"ws://127.0.0.1:{port}",
                subscriptions=[Subscription("level2", ("BTC-USD",))],
                clock=ManualClock(),
                exchange=FAST_RECONNECT,
                stop=stop,
            )
    # The try under way when stop was set may end as "stopped" rather than failed.
    assert accepted - 1 <= summary.failed_tries <= accepted
    assert not summary.connected and summary.failed
    assert f"never connected ({summary.failed_tries} connection tries failed)" in (
        summary.describe()
    )
    assert "reconnects: 0" not in summary.describe()

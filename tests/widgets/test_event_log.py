"""The event log: only unseen events are written, and it stays bounded."""

from __future__ import annotations

from collections.abc import Callable

from core.snapshot import EventView
from tests.widgets.helpers import HostApp
from widgets.event_log import EventLog, event_line, unseen_events

T0 = 1_767_225_600.0


def events(count: int, start: int = 1) -> tuple[EventView, ...]:
    return tuple(EventView(T0 + n, "info", f"event {n}") for n in range(start, start + count))


def test_unseen_events() -> None:
    recent = events(5)  # the engine kept events 1..5; version 5
    assert unseen_events(recent, 5, 0) == recent
    assert [e.text for e in unseen_events(recent, 5, 3)] == ["event 4", "event 5"]
    assert unseen_events(recent, 5, 5) == ()
    # More happened than the engine kept: everything it has is new.
    assert unseen_events(recent, 50, 10) == recent


def test_event_line_styles_by_level() -> None:
    line = event_line(EventView(T0 + 5, "error", "order rejected: INSUFFICIENT_FUNDS"))
    assert line.plain == "00:00:05  order rejected: INSUFFICIENT_FUNDS"
    assert any("red" in str(span.style) for span in line.spans)


async def test_log_writes_new_events_once_and_is_bounded(host: Callable[..., HostApp]) -> None:
    log = EventLog(max_lines=3)
    async with host(log).run_test(size=(60, 8)) as pilot:
        assert log.update_events(events(2), 2) == 2
        assert log.update_events(events(2), 2) == 0
        assert log.update_events(events(4), 4) == 2
        await pilot.pause()
        assert list(log.texts) == ["event 2", "event 3", "event 4"]
        assert len(log.lines) == 3
        assert log.seen_version == 4
        assert not log.can_focus


async def test_a_write_does_not_relayout_the_screen(host: Callable[..., HostApp]) -> None:
    log = EventLog()
    async with host(log).run_test(size=(60, 8)) as pilot:
        log.update_events(events(20), 20)  # the scrollbar appears: one layout pass
        await pilot.pause()
        screen = pilot.app.screen
        assert log.show_vertical_scrollbar
        log.update_events(events(3, start=21), 23)
        assert not screen._layout_required and not log._layout_required
        await pilot.pause()
        assert log.virtual_size.height == 23
        assert log.vertical_scrollbar.window_virtual_size == 23
        assert log.scroll_y == log.max_scroll_y  # still following the newest line


async def test_after_a_resize_the_newest_lines_show(host: Callable[..., HostApp]) -> None:
    log = EventLog()
    app = host(log)
    async with app.run_test(size=(60, 10)) as pilot:
        log.update_events(events(40), 40)
        await pilot.pause()
        log.scroll_home(animate=False)  # as if the oldest lines were showing
        await pilot.pause()
        assert log.scroll_y == 0
        await pilot.resize_terminal(90, 14)
        await pilot.pause()
        await pilot.pause()
        assert log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y
        assert log.events[-1].text == "event 40"
        assert log.border_subtitle == "e: full text"

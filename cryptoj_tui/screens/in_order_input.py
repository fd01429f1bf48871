"""An Input that handles the keys typed into it in the order they were typed.

The App hands each key to the widget focused when it reads the key, into that widget's own
queue. Two things in Textual then break the typed order when keys arrive together (a fast
typist while a frame is painted, a paste through tmux):

- A widget's bindings (backspace, delete, the arrows, home, end, enter...) run only once the
  key has bubbled up to the App, a few queue hops later, while a printable key is inserted at
  once: "<end>", backspaces, "65000" typed at once left the field empty (the digits went in
  first, then the backspaces deleted them).
- Tab moves focus only once it has bubbled up to the App too, so the keys typed after it are
  already in this field's queue: "0.001<tab>7" read as 0.0017 in the size, the price
  unchanged.

Here the field runs its own bindings as each key arrives, moves focus itself on tab and
shift+tab, and a key that reaches it after it lost focus that way goes on to the field that
has it now. Tab is not made an App-level priority binding instead: a key still bubbling up
from the field being left (enter on the post-only checkbox) would then be bound against the
new focus (the Buy button) and send the order.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input

FOCUS_KEYS = {"tab": "focus_next", "shift+tab": "focus_previous"}


class InOrderInput(Input):
    """An Input that handles each key as it arrives, in the order typed."""

    async def _on_key(self, event: events.Key) -> None:
        focused = self.app.focused
        if focused is not None and focused is not self and focused.screen is self.screen:
            # Typed after a tab this field handled: the key belongs where focus went.
            event.stop()
            event.prevent_default()
            passed_on = events.Key(event.key, event.character)
            passed_on.set_sender(self.app)
            focused.post_message(passed_on)
            return
        move = FOCUS_KEYS.get(event.key)
        if move is not None:
            event.stop()
            event.prevent_default()
            getattr(self.screen, move)()
            return
        bindings = self._bindings.key_to_bindings.get(event.key)
        if bindings:
            event.stop()
            event.prevent_default()
            await self.run_action(bindings[0].action)
            return
        await super()._on_key(event)

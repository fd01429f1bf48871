"""An Input whose editing keys act in the order they were typed.

Textual runs a widget's bindings (backspace, delete, the arrows, home, end, enter...) only
once the key has bubbled up to the App, a few queue hops later, while it inserts a printable
key at once. Keys that arrive together (a fast typist while a frame is painted, a paste
through tmux) were edited out of order: "<end>", backspaces, "65000" typed at once left the
field empty (the digits went in first, then the backspaces deleted them). Here the field's own
bindings run as the key arrives; any other key goes its usual way.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class InOrderInput(Input):
    """An Input that runs its own key bindings as each key arrives, in the order typed."""

    async def _on_key(self, event: events.Key) -> None:
        bindings = self._bindings.key_to_bindings.get(event.key)
        if bindings:
            event.stop()
            event.prevent_default()
            await self.run_action(bindings[0].action)
            return
        await super()._on_key(event)

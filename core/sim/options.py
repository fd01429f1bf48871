"""What a simulated exchange needs to start (seed, rate, host, port, tls), and the one line in
which the console hands them to the demo's child.

The console's demo starts its child before it has loaded its own settings (docs/design.md,
start-up): the child imports its server meanwhile, then reads the sim's settings, already
validated by the console's ``SimSettings``, as one JSON line on its stdin (``python -m
core.sim --settings-on-stdin``). So the child never loads the settings machinery (pydantic,
~0.1 s of a boot the console waits for) and the configuration is read once, by the console.

Standard library only: both the launcher (in the console) and the child import this.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Protocol


class SimStartSettings(Protocol):
    """What starting a simulated exchange reads: ``core.config.SimSettings`` or
    :class:`SimOptions`."""

    @property
    def seed(self) -> int: ...

    @property
    def rate(self) -> float: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def tls(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class SimOptions:
    """The sim's settings as the child gets them from its parent (validated there)."""

    seed: int
    rate: float
    host: str
    port: int
    tls: bool

    @classmethod
    def of(cls, settings: SimStartSettings) -> SimOptions:
        return cls(
            seed=settings.seed,
            rate=settings.rate,
            host=settings.host,
            port=settings.port,
            tls=settings.tls,
        )

    def to_line(self) -> bytes:
        """One line of JSON (ends with a newline)."""
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> SimOptions:
        """Parse :meth:`to_line`'s output; ``ValueError`` naming what is wrong otherwise."""
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"the sim's settings are not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("the sim's settings are not a JSON object")
        expected: dict[str, type | tuple[type, ...]] = {
            "seed": int,
            "rate": (int, float),
            "host": str,
            "port": int,
            "tls": bool,
        }
        if set(data) != set(expected):
            raise ValueError(f"the sim's settings have keys {sorted(data)}, not {sorted(expected)}")
        for key, kind in expected.items():
            value = data[key]
            # bool is an int in Python: a seed or port of ``true`` is refused all the same.
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise ValueError(f"the sim's setting {key!r} has a wrong type: {value!r}")
        return cls(
            seed=data["seed"],
            rate=float(data["rate"]),
            host=data["host"],
            port=data["port"],
            tls=data["tls"],
        )

"""Settings: a TOML file overridden by ``CRYPTOJ_*`` environment variables.

Precedence (highest first): explicit overrides from the command line, environment variables
(``CRYPTOJ_EXCHANGE__REQUEST_TIMEOUT_S=5``; nested keys joined with ``__``), the TOML file
(``--config PATH``, else ``config.toml`` in the user's config directory), the defaults here.

A bad value raises ``ConfigError`` whose message is one line naming the key, the value and
what is allowed; the CLI prints it and exits with code 2. Secrets are ``SecretStr`` so they
never show up in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
import stat
import sys
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson
import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

APP_NAME = "cryptoj"
ENV_PREFIX = "CRYPTOJ_"


class ConfigError(Exception):
    """A configuration problem, already phrased for the user (one line per problem)."""


class Mode(StrEnum):
    DEMO = "demo"
    PAPER = "paper"
    LIVE = "live"
    REPLAY = "replay"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExchangeSettings(_Section):
    """Where the Coinbase endpoints are and how hard we may use them."""

    rest_url: str = "https://api.coinbase.com"
    ws_market_url: str = "wss://advanced-trade-ws.coinbase.com"
    ws_user_url: str = "wss://advanced-trade-ws-user.coinbase.com"
    request_timeout_s: float = Field(default=10.0, gt=0, le=120)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Coinbase publishes 30 private / 10 public requests per second as ceilings; budget lower.
    private_rate_per_s: float = Field(default=25.0, gt=0, le=30)
    public_rate_per_s: float = Field(default=8.0, gt=0, le=10)
    # A BTC-USD level2 snapshot can exceed 4 MiB; the SDK uses 10 MiB, ccxt raised to 100 MiB.
    ws_max_message_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    # No message on a socket for this long (heartbeats arrive every second) => reconnect.
    ws_silence_timeout_s: float = Field(default=5.0, gt=0, le=300)
    reconnect_initial_s: float = Field(default=0.25, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=600)

    @field_validator("rest_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("ws_market_url", "ws_user_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value


class CredentialSettings(_Section):
    """A CDP API key: the key name and its private key (PEM for ES256, base64 for Ed25519).

    Either both values directly (best from the environment:
    ``CRYPTOJ_CREDENTIALS__KEY_NAME`` / ``CRYPTOJ_CREDENTIALS__PRIVATE_KEY``) or ``key_file``,
    the JSON file the portal gives (``{"name": ..., "privateKey": ...}``).
    """

    key_name: SecretStr | None = None
    private_key: SecretStr | None = None
    key_file: Path | None = None

    @field_validator("key_file")
    @classmethod
    def _expand_key_file(cls, value: Path | None) -> Path | None:
        return _expand(value)

    @property
    def configured(self) -> bool:
        return self.key_file is not None or (
            self.key_name is not None and self.private_key is not None
        )


class MarketSettings(_Section):
    products: list[str] = Field(default_factory=lambda: ["BTC-USD", "ETH-USD", "SOL-USD"])
    trades_buffer: int = Field(default=1000, ge=10, le=1_000_000)
    candles_buffer: int = Field(default=500, ge=10, le=100_000)
    tickers_buffer: int = Field(default=500, ge=10, le=100_000)
    # A book with no update for this long is shown and treated as stale.
    stale_after_s: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("products")
    @classmethod
    def _product_ids(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('list at least one product, e.g. ["BTC-USD"]')
        for product_id in value:
            base, _, quote = product_id.partition("-")
            if not base or not quote or product_id != product_id.upper():
                raise ValueError(f"{product_id!r} is not a product id like 'BTC-USD'")
        return value


class SimSettings(_Section):
    """The built-in simulated exchange (the demo's market and the tests' counterparty)."""

    seed: int = 7
    # level2 updates per second the market agents aim for (calm ~200, busy ~5000).
    rate: float = Field(default=400.0, gt=0, le=50_000)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)  # 0 = pick a free port
    tls: bool = False


class RiskSettings(_Section):
    """Pre-trade limits and automatic triggers. Money in the quote currency (USD)."""

    max_order_notional: Decimal = Field(default=Decimal("25000"), gt=0)
    max_position_notional: Decimal = Field(default=Decimal("50000"), gt=0)  # per product
    max_gross_exposure: Decimal = Field(default=Decimal("100000"), gt=0)  # all products
    price_band_bps: Decimal = Field(default=Decimal("200"), gt=0, le=10000)  # around mid
    max_open_orders: int = Field(default=200, ge=1, le=10000)
    max_orders_per_s: float = Field(default=10.0, gt=0, le=1000)  # denied above, never queued
    stale_market_data_s: float = Field(default=5.0, gt=0, le=3600)
    daily_loss_limit: Decimal = Field(default=Decimal("2000"), gt=0)
    max_drawdown: Decimal = Field(default=Decimal("5000"), gt=0)  # from peak equity
    # Trigger HALTED when market data stays stale/resyncing longer than this.
    market_data_outage_s: float = Field(default=30.0, gt=0, le=3600)
    # Trigger HALTED when the user stream stays down longer than this.
    user_stream_outage_s: float = Field(default=30.0, gt=0, le=3600)
    # Trigger HALTED on this many exchange rejects within reject_storm_window_s.
    reject_storm_count: int = Field(default=10, ge=1, le=10000)
    reject_storm_window_s: float = Field(default=10.0, gt=0, le=3600)
    # Hour (UTC) at which the trading day, and the daily P&L, starts.
    day_boundary_utc_hour: int = Field(default=0, ge=0, le=23)
    # Flatten: worst price accepted, in bps away from the touch.
    flatten_slippage_bps: Decimal = Field(default=Decimal("100"), gt=0, le=5000)
    # Kill switch: after this many rounds without the venue flat, the journal says so (the
    # sweep goes on until a listing shows no open order: it never gives up on its own).
    kill_max_verify_rounds: int = Field(default=10, ge=1, le=1000)
    # Kill switch: the bound on each venue call of the sweep (a hung request is abandoned and
    # retried), the first pause between rounds and the longest one (doubling in between).
    kill_call_timeout_s: float = Field(default=5.0, gt=0, le=120)
    kill_first_pause_s: float = Field(default=0.05, gt=0, le=60)
    kill_max_pause_s: float = Field(default=2.0, gt=0, le=300)
    # Kill switch: with the user stream up, wait at most this long for it to confirm the
    # cancels before listing (the listing is always the final confirmation).
    kill_stream_confirm_s: float = Field(default=0.5, ge=0, le=30)
    # An order whose create outcome is unknown stays UNKNOWN (shown, counted, covered by the
    # kill) until a lookup this long after its last send still does not find it: longer than
    # any plausible late arrival of the POST.
    unknown_order_absent_s: float = Field(default=60.0, gt=0, le=3600)


class PaperSettings(_Section):
    """The paper venue's fill model."""

    starting_balances: dict[str, Decimal] = Field(
        default_factory=lambda: {"USD": Decimal("100000")}
    )
    maker_fee_rate: Decimal = Field(default=Decimal("0.004"), ge=0, le=Decimal("0.1"))
    taker_fee_rate: Decimal = Field(default=Decimal("0.006"), ge=0, le=Decimal("0.1"))
    latency_ms: float = Field(default=50.0, ge=0, le=10000)
    # Model our place in the queue at a price level (fills only after the size ahead trades).
    queue_position: bool = True


class StrategySettings(_Section):
    """The automated strategy. ``name`` "none" runs none; the human can always override."""

    name: Literal["none", "market_maker", "trend"] = "none"
    product_id: str = "BTC-USD"
    # market_maker
    mm_order_size: Decimal = Field(default=Decimal("0.001"), gt=0)
    mm_half_spread_bps: Decimal = Field(default=Decimal("5"), gt=0)
    mm_max_inventory: Decimal = Field(default=Decimal("0.01"), gt=0)
    mm_requote_s: float = Field(default=1.0, gt=0)
    # trend
    trend_fast_window_s: float = Field(default=30.0, gt=0)
    trend_slow_window_s: float = Field(default=120.0, gt=0)
    trend_order_size: Decimal = Field(default=Decimal("0.001"), gt=0)


class HeadlessSettings(_Section):
    cancel_open_orders_on_exit: bool = True


class StorageSettings(_Section):
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir(APP_NAME)))

    @field_validator("data_dir")
    @classmethod
    def _expand_data_dir(cls, value: Path | None) -> Path | None:
        return _expand(value)


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: Path | None = None

    @field_validator("file")
    @classmethod
    def _expand_file(cls, value: Path | None) -> Path | None:
        return _expand(value)


def _expand(path: Path | None) -> Path | None:
    """``~`` in a configured path means the user's home, as it does in a shell."""
    return path.expanduser() if path is not None else None


class Settings(BaseSettings):
    """Every setting CryptoJ reads. ``config.example.toml`` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )
    # Set by ``load_settings``; pydantic-settings reads the TOML file from here.
    _toml_path: ClassVar[Path | None] = None

    mode: Mode = Mode.DEMO
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    credentials: CredentialSettings = Field(default_factory=CredentialSettings)
    market: MarketSettings = Field(default_factory=MarketSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    paper: PaperSettings = Field(default_factory=PaperSettings)
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    headless: HeadlessSettings = Field(default_factory=HeadlessSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_path))
        return tuple(sources)


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def load_settings(
    path: Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Read settings; raise ``ConfigError`` with a one-line message per problem.

    ``path`` None means the default location, used only if it exists. An explicit path
    that does not exist is an error.
    """
    saved_env = None
    if environ is not None:
        saved_env = dict(os.environ)
        os.environ.clear()
        os.environ.update(environ)
    try:
        return _load(path, overrides or {})
    finally:
        if saved_env is not None:
            os.environ.clear()
            os.environ.update(saved_env)


def _load(path: Path | None, overrides: dict[str, Any]) -> Settings:
    toml_path = path if path is not None else default_config_path()
    found: Path | None = None
    if toml_path.exists():
        _warn_once_if_readable(toml_path, _check_toml_syntax(toml_path))
        found = toml_path
    elif path is not None:
        raise ConfigError(f"config file {toml_path} does not exist (check --config)")
    Settings._toml_path = found
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, found)) from None
    finally:
        Settings._toml_path = None


def _check_toml_syntax(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def describe_validation_error(exc: ValidationError, *, prefix: str = "", where: str = "") -> str:
    """One line per problem: the key (``prefix`` + its path), the value, what is allowed."""
    return _describe(exc, None, prefix=prefix, where=where)


def _describe(exc: ValidationError, path: Path | None, *, prefix: str = "", where: str = "") -> str:
    if path:
        where = f" (in {path} or a {ENV_PREFIX}* variable)"
    lines = []
    for error in exc.errors(include_url=False):
        key = prefix + (".".join(str(part) for part in error["loc"]) or "(top level)")
        kind = error["type"]
        if kind == "extra_forbidden":
            lines.append(
                f"config key '{key}' is not a setting{where}; see config.example.toml for the valid keys"
            )
            continue
        value = error.get("input")
        shown = _show_value(key, value)
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        lines.append(f"config key '{key}' = {shown}: {message}{where}")
    return "\n".join(lines)


def _show_value(key: str, value: Any) -> str:
    if "key" in key.split(".")[-1] and "file" not in key:
        return "<hidden>"
    if isinstance(value, dict):
        return "{…}"
    return repr(value)


class Credentials:
    """Key material resolved from settings, kept out of every repr."""

    __slots__ = ("_key_name", "_private_key")

    def __init__(self, key_name: str, private_key: str) -> None:
        self._key_name = SecretStr(key_name)
        self._private_key = SecretStr(private_key)

    @property
    def key_name(self) -> str:
        return self._key_name.get_secret_value()

    @property
    def private_key(self) -> str:
        return self._private_key.get_secret_value()

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"


def resolve_credentials(settings: CredentialSettings) -> Credentials | None:
    """The key from the environment/TOML values, else from the portal's JSON key file."""
    if settings.key_name is not None and settings.private_key is not None:
        return Credentials(
            settings.key_name.get_secret_value(), settings.private_key.get_secret_value()
        )
    if settings.key_name is not None or settings.private_key is not None:
        raise ConfigError(
            "config keys 'credentials.key_name' and 'credentials.private_key' must be set together"
        )
    if settings.key_file is None:
        return None
    return load_key_file(settings.key_file)


def load_key_file(path: Path) -> Credentials:
    """Read the portal's key file: ``{"name": ..., "privateKey": ...}`` (``id`` also accepted)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"config key 'credentials.key_file' = '{path}': cannot read it ({exc.strerror})"
        ) from None
    _warn_once_if_readable(path)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ConfigError(
            f"config key 'credentials.key_file' = '{path}': not JSON; expected the key file "
            "from the Coinbase developer portal with 'name' and 'privateKey'"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config key 'credentials.key_file' = '{path}': expected a JSON object with "
            "'name' and 'privateKey'"
        )
    name = data.get("name") or data.get("id")
    secret = data.get("privateKey")
    if not isinstance(name, str) or not isinstance(secret, str) or not name or not secret:
        raise ConfigError(
            f"config key 'credentials.key_file' = '{path}': missing 'name' (or 'id') or "
            "'privateKey'"
        )
    return Credentials(name, secret)


_warned_readable: set[Path] = set()


def _warn_once_if_readable(path: Path, toml: dict[str, Any] | None = None) -> None:
    """Print (stderr, once per file and process) that a file holding key material is readable
    by other users. Printed, not logged: logging is configured only after settings load.
    ``toml`` given: the file is a config file, and holds secrets only with a key in it."""
    if toml is not None:
        credentials = toml.get("credentials")
        if not isinstance(credentials, dict) or not (
            credentials.get("private_key") or credentials.get("key_name")
        ):
            return
    warning = world_readable_secret_warning(path)
    if warning is not None and path.resolve() not in _warned_readable:
        _warned_readable.add(path.resolve())
        print(f"cryptoj: {warning}", file=sys.stderr)


def world_readable_secret_warning(path: Path) -> str | None:
    """A warning if a file that may hold secrets can be read by group or others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return (
            f"warning: {path} may hold secrets and is readable by other users; "
            f"run: chmod 600 {path}"
        )
    return None

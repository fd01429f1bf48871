"""Settings: a TOML file overridden by ``CRYPTOJ_*`` environment variables.

Precedence (highest first): explicit overrides from the command line, environment variables
(``CRYPTOJ_EXCHANGE__REQUEST_TIMEOUT_S=5``; nested keys joined with ``__``), the TOML file
(``--config PATH``, else ``config.toml`` in the user's config directory), the defaults here.

A bad value raises ``ConfigError`` whose message is one line naming the key, the value and
what is allowed; the CLI prints it and exits with code 2. Secrets are ``SecretStr`` so they
never show up in a repr, a log line or an error message.

``load_settings`` builds the two sources per call (the TOML file it was given, the environment
mapping it was given) and passes their merged values to ``Settings``; nothing is kept on the
class and ``os.environ`` is only read, never swapped. A ``CRYPTOJ_*`` variable that names no
setting is reported on stderr with the closest valid name (a typo must not pass silently).
Every number is bounded: finite, positive where zero or less makes no sense, and below a
ceiling no real account reaches (a size of ``1e400`` is a typo, not an order).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import stat
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

import orjson
import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

APP_NAME = "cryptoj"
ENV_PREFIX = "CRYPTOJ_"
ENV_NESTED_DELIMITER = "__"
# CRYPTOJ_* variables that are not settings: test and benchmark switches read elsewhere.
NON_SETTING_VARIABLES = frozenset(
    {"CRYPTOJ_BENCH_STRICT", "CRYPTOJ_FUZZ_EXAMPLES", "CRYPTOJ_TEST_SIM"}
)

# Ceilings for amounts: far above any real account, low enough that a typo (an exponent, a
# pasted number) is refused instead of becoming an order or a balance.
MAX_MONEY = Decimal("1e12")
MAX_BASE_SIZE = Decimal("1e9")


class ConfigError(Exception):
    """A configuration problem, already phrased for the user (one line per problem)."""


class Mode(StrEnum):
    DEMO = "demo"
    PAPER = "paper"
    LIVE = "live"
    REPLAY = "replay"


class _Section(BaseModel):
    # allow_inf_nan=False: "inf" or "nan" is never a sensible timeout, rate or size.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ExchangeSettings(_Section):
    """Where the Coinbase endpoints are and how hard we may use them."""

    rest_url: str = "https://api.coinbase.com"
    ws_market_url: str = "wss://advanced-trade-ws.coinbase.com"
    ws_user_url: str = "wss://advanced-trade-ws-user.coinbase.com"
    request_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # The whole REST call (every retry, the answer read to its last byte) ends by this: a
    # server trickling bytes resets a per-read timeout forever, never this deadline.
    request_deadline_s: float = Field(default=20.0, gt=0, le=600)
    # Largest REST answer body read; the largest real answer (the products list) is ~2 MB.
    max_response_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Coinbase publishes 30 private / 10 public requests per second as ceilings; budget lower.
    private_rate_per_s: float = Field(default=25.0, gt=0, le=30)
    public_rate_per_s: float = Field(default=8.0, gt=0, le=10)
    # A BTC-USD level2 snapshot can exceed 4 MiB; the SDK uses 10 MiB, ccxt raised to 100 MiB.
    ws_max_message_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024 * 1024, le=1024 * 1024 * 1024
    )
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
    # From the environment also a comma-separated list: CRYPTOJ_MARKET__PRODUCTS=BTC-USD,ETH-USD.
    products: list[str] = Field(
        default_factory=lambda: ["BTC-USD", "ETH-USD", "SOL-USD"], max_length=100
    )
    trades_buffer: int = Field(default=1000, ge=10, le=1_000_000)
    candles_buffer: int = Field(default=500, ge=10, le=100_000)
    tickers_buffer: int = Field(default=500, ge=10, le=100_000)
    # A book with no update for this long is shown and treated as stale.
    stale_after_s: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("products", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """``"BTC-USD,ETH-USD"`` (one string, as a shell or a hurried TOML line gives it) is
        the list it spells."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

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

    seed: int = Field(default=7, ge=0, le=2**32 - 1)
    # level2 updates per second the market agents aim for (calm ~200, busy ~5000).
    rate: float = Field(default=400.0, gt=0, le=50_000)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)  # 0 = pick a free port
    tls: bool = False

    @field_validator("host")
    @classmethod
    def _host_name_or_address(cls, value: str) -> str:
        return check_listen_host(value)


class RiskSettings(_Section):
    """Pre-trade limits and automatic triggers. Money in the quote currency (USD)."""

    max_order_notional: Decimal = Field(default=Decimal("25000"), gt=0, le=MAX_MONEY)
    # Per product, and over all products.
    max_position_notional: Decimal = Field(default=Decimal("50000"), gt=0, le=MAX_MONEY)
    max_gross_exposure: Decimal = Field(default=Decimal("100000"), gt=0, le=MAX_MONEY)
    price_band_bps: Decimal = Field(default=Decimal("200"), gt=0, le=10000)  # around mid
    max_open_orders: int = Field(default=200, ge=1, le=10000)
    max_orders_per_s: float = Field(default=10.0, gt=0, le=1000)  # denied above, never queued
    stale_market_data_s: float = Field(default=5.0, gt=0, le=3600)
    daily_loss_limit: Decimal = Field(default=Decimal("2000"), gt=0, le=MAX_MONEY)
    max_drawdown: Decimal = Field(default=Decimal("5000"), gt=0, le=MAX_MONEY)  # from peak equity
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
    # Kill switch: with the user stream up and in sync, wait at most this long for it to
    # confirm the cancels before a listing decides (docs/design.md, the kill switch).
    kill_stream_confirm_s: float = Field(default=0.5, ge=0, le=30)
    # An order whose create outcome is unknown stays UNKNOWN (shown, counted, covered by the
    # kill) until a lookup this long after its last send still does not find it: longer than
    # any plausible late arrival of the POST.
    unknown_order_absent_s: float = Field(default=60.0, gt=0, le=3600)


class PaperSettings(_Section):
    """The paper venue's fill model."""

    starting_balances: dict[str, Annotated[Decimal, Field(ge=0, le=MAX_MONEY)]] = Field(
        default_factory=lambda: {"USD": Decimal("100000")}, max_length=100
    )
    maker_fee_rate: Decimal = Field(default=Decimal("0.004"), ge=0, le=Decimal("0.1"))
    taker_fee_rate: Decimal = Field(default=Decimal("0.006"), ge=0, le=Decimal("0.1"))
    latency_ms: float = Field(default=50.0, ge=0, le=10000)
    # Model our place in the queue at a price level (fills only after the size ahead trades).
    queue_position: bool = True
    # Coinbase's market-order protection: a market order fills no further than this many
    # percent from the touch (the best opposite price when it arrives); the rest is cancelled.
    market_protection_pct: Decimal = Field(default=Decimal("10"), gt=0, le=100)

    @field_validator("starting_balances")
    @classmethod
    def _currency_codes(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for currency in value:
            if not currency.isalnum() or currency != currency.upper() or len(currency) > 10:
                raise ValueError(f"{currency!r} is not a currency code like 'USD'")
        return value


class StrategySection(_Section):
    """The settings of one strategy: a ``[strategy.NAME]`` table. Every field of
    ``StrategySettings`` of this type is a strategy ``strategy.name`` may select, and
    ``core/strategy/registry.py`` maps each to its builder."""


class MarketMakerSettings(StrategySection):
    """``[strategy.market_maker]``: quote size, half spread, inventory cap, requote period."""

    order_size: Decimal = Field(default=Decimal("0.001"), gt=0, le=MAX_BASE_SIZE)
    half_spread_bps: Decimal = Field(default=Decimal("5"), gt=0, lt=10000)
    max_inventory: Decimal = Field(default=Decimal("0.01"), gt=0, le=MAX_BASE_SIZE)
    requote_s: float = Field(default=1.0, gt=0, le=3600)


class TrendSettings(StrategySection):
    """``[strategy.trend]``: moving-average windows and the position it takes."""

    fast_window_s: float = Field(default=30.0, gt=0, le=86400)
    slow_window_s: float = Field(default=120.0, gt=0, le=86400)
    order_size: Decimal = Field(default=Decimal("0.001"), gt=0, le=MAX_BASE_SIZE)


# The flat keys of earlier versions and where each one lives now.
MOVED_STRATEGY_KEYS = {
    "mm_order_size": "market_maker.order_size",
    "mm_half_spread_bps": "market_maker.half_spread_bps",
    "mm_max_inventory": "market_maker.max_inventory",
    "mm_requote_s": "market_maker.requote_s",
    "trend_fast_window_s": "trend.fast_window_s",
    "trend_slow_window_s": "trend.slow_window_s",
    "trend_order_size": "trend.order_size",
}


class StrategySettings(_Section):
    """The automated strategy. ``name`` "none" runs none; the human can always override."""

    name: str = "none"
    product_id: str = "BTC-USD"
    market_maker: MarketMakerSettings = Field(default_factory=MarketMakerSettings)
    trend: TrendSettings = Field(default_factory=TrendSettings)

    @model_validator(mode="before")
    @classmethod
    def _no_flat_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for old, new in MOVED_STRATEGY_KEYS.items():
                if old in data:
                    section, key = new.split(".")
                    raise ValueError(
                        f"'strategy.{old}' moved to 'strategy.{new}' "
                        f"(in TOML: {key} under [strategy.{section}])"
                    )
        return data

    @field_validator("name")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        names = ("none", *strategy_names())
        if value not in names:
            raise ValueError(f"expected one of {', '.join(repr(n) for n in names)}")
        return value

    @field_validator("product_id")
    @classmethod
    def _product_id(cls, value: str) -> str:
        base, _, quote = value.partition("-")
        if not base or not quote or value != value.upper():
            raise ValueError(f"{value!r} is not a product id like 'BTC-USD'")
        return value

    def section(self, name: str) -> StrategySection:
        """The ``[strategy.NAME]`` table of strategy ``name``."""
        section = getattr(self, name)
        assert isinstance(section, StrategySection), name
        return section


def strategy_names() -> tuple[str, ...]:
    """The strategies ``strategy.name`` may select: the ``[strategy.NAME]`` tables."""
    return tuple(
        name
        for name, field in StrategySettings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, StrategySection)
    )


def check_listen_host(value: str) -> str:
    """A host name or IP address to listen on: no scheme, port, path or spaces."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.split(".")
    if (
        not value
        or len(value) > 253
        or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
            for label in labels
        )
    ):
        raise ValueError(f"{value!r} is not a host name or IP address to listen on, e.g. 127.0.0.1")
    return value


class HeadlessSettings(_Section):
    cancel_open_orders_on_exit: bool = True
    # A "status" line every this many seconds, so a quiet session still shows it is alive
    # (0: none).
    status_interval_s: float = Field(default=60.0, ge=0, le=86400)


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


# Settings holding a path, where ``~`` means the home of the environment load_settings reads.
_PATH_KEYS = (("credentials", "key_file"), ("storage", "data_dir"), ("log", "file"))


def _expand_home(values: dict[str, Any], home: str | None) -> dict[str, Any]:
    if not home:
        return values
    for section, key in _PATH_KEYS:
        table = values.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if isinstance(value, str) and (value == "~" or value.startswith("~/")):
            values = _deep_merge(values, {section: {key: home + value[1:]}})
    return values


class Settings(BaseSettings):
    """Every setting CryptoJ reads. ``config.example.toml`` documents each one.

    ``Settings(**values)`` takes only the values given (and the defaults); ``load_settings``
    reads the TOML file and the environment and passes them in.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

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
        # Only the values passed in: load_settings builds the file and environment sources per
        # call (a path and an environment are arguments, not state on the class).
        return (init_settings,)


class TomlFileSource(PydanticBaseSettingsSource):
    """The values of one TOML config file (read once, for this call only)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.values = _read_toml(path)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


class EnvironmentSource(PydanticBaseSettingsSource):
    """The ``CRYPTOJ_*`` variables of one environment mapping, as nested values.

    ``CRYPTOJ_SECTION__KEY=value``; a list also as ``a,b,c`` (or a JSON array); a table or a
    whole section as a JSON object. A value that cannot be read raises ``ConfigError`` naming
    the variable; a variable that names no setting is collected in ``unknown`` (with the
    closest valid name), not applied.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.values: dict[str, Any] = {}
        self.unknown: list[str] = []
        for variable, raw in sorted(environ.items()):
            if variable.upper().startswith(ENV_PREFIX):
                self._add(variable, raw)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.values

    def _add(self, variable: str, raw: str) -> None:
        if variable.upper() in NON_SETTING_VARIABLES:
            return
        parts = variable[len(ENV_PREFIX) :].split(ENV_NESTED_DELIMITER)
        model: type[BaseModel] = Settings
        target = self.values
        for index, part in enumerate(parts):
            key = part.lower()
            field = model.model_fields.get(key)
            last = index == len(parts) - 1
            if field is None:
                if model is StrategySettings and key in MOVED_STRATEGY_KEYS and last:
                    target[key] = raw  # the model names the new key in its error
                else:
                    self.unknown.append(_unknown_variable_warning(variable))
                return
            annotation = field.annotation
            if last:
                target[key] = _env_value(variable, raw, annotation)
                return
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation
                section = target.setdefault(key, {})
                if not isinstance(section, dict):  # the whole section was also given as JSON
                    return
                target = section
                continue
            if get_origin(annotation) is dict and index == len(parts) - 2:
                # CRYPTOJ_PAPER__STARTING_BALANCES__USD=500: the table key keeps its case.
                table = target.setdefault(key, {})
                if isinstance(table, dict):
                    table[parts[-1]] = raw
                return
            self.unknown.append(_unknown_variable_warning(variable))
            return


def _env_value(variable: str, raw: str, annotation: Any) -> Any:
    """A variable's text as the field's type needs it; scalars stay text for pydantic."""
    origin = get_origin(annotation)
    is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    if origin is list:
        text = raw.strip()
        if text.startswith("["):
            value = _env_json(variable, raw, "a JSON array or a comma-separated list")
            if not isinstance(value, list):
                raise ConfigError(f"environment variable {variable} = {raw!r}: expected a list")
            return value
        return [item.strip() for item in text.split(",") if item.strip()]
    if origin is dict or is_section:
        example = (
            f"{variable}__<KEY>=value for one key"
            if is_section
            else f"{variable}__USD=100000 for one entry"
        )
        value = _env_json(variable, raw, f'a JSON object like {{"key": value}}, or {example}')
        if not isinstance(value, dict):
            raise ConfigError(
                f"environment variable {variable} = {_show_env(variable, raw)}: expected a JSON "
                f"object, or {example}"
            )
        return value
    return raw


def _env_json(variable: str, raw: str, expected: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ConfigError(
            f"environment variable {variable} = {_show_env(variable, raw)}: not valid JSON; "
            f"expected {expected}"
        ) from None


def _show_env(variable: str, raw: str) -> str:
    return "<hidden>" if "CREDENTIALS" in variable.upper() else repr(raw)


def setting_variable_names() -> list[str]:
    """Every ``CRYPTOJ_*`` variable that names a setting (sections as a whole included)."""

    def walk(model: type[BaseModel], prefix: str) -> Iterator[str]:
        for name, field in model.model_fields.items():
            variable = f"{prefix}{name.upper()}"
            yield variable
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from walk(annotation, variable + ENV_NESTED_DELIMITER)

    return list(walk(Settings, ENV_PREFIX))


def _unknown_variable_warning(variable: str) -> str:
    closest = difflib.get_close_matches(variable.upper(), setting_variable_names(), n=1)
    hint = f"; did you mean {closest[0]}?" if closest else "; see config.example.toml"
    return f"warning: environment variable {variable} is not a setting and is ignored{hint}"


def default_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``config.toml`` in the user's config directory (for ``environ``, or this process)."""
    directory = _user_dir(environ, "XDG_CONFIG_HOME", ".config", platformdirs.user_config_dir)
    return directory / "config.toml" if directory is not None else None


def _user_dir(
    environ: Mapping[str, str] | None,
    xdg: str,
    under_home: str,
    platform_dir: Callable[..., str],
) -> Path | None:
    """CryptoJ's directory of one kind: platformdirs for this process; for another
    environment mapping (platformdirs reads only os.environ) the XDG rule applied to it."""
    if environ is None or not sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return Path(platform_dir(APP_NAME))
    base = environ.get(xdg) or (
        str(Path(environ["HOME"]) / under_home) if environ.get("HOME") else None
    )
    return Path(base) / APP_NAME if base else None


def load_settings(
    path: Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Settings:
    """Read settings; raise ``ConfigError`` with a one-line message per problem.

    ``path`` None means the default location, used only if it exists. An explicit path
    that does not exist is an error. ``environ`` replaces the process environment for this
    call (the default config location follows its HOME / XDG_CONFIG_HOME). Warnings (unknown
    ``CRYPTOJ_*`` variables) go to ``warn`` (default: one line each on stderr).
    """
    env = os.environ if environ is None else environ
    toml_path = path if path is not None else default_config_path(environ)
    toml: TomlFileSource | None = None
    if toml_path is not None and toml_path.exists():
        toml = TomlFileSource(Settings, toml_path)
        _warn_once_if_readable(toml_path, toml.values)
    elif path is not None:
        raise ConfigError(f"config file {path} does not exist (check --config)")
    environment = EnvironmentSource(Settings, env)
    for line in environment.unknown:
        if warn is None:
            print(f"cryptoj: {line}", file=sys.stderr)
        else:
            warn(line)
    values = _deep_merge(toml() if toml is not None else {}, environment())
    values = _deep_merge(values, overrides or {})
    if environ is not None and "data_dir" not in values.get("storage", {}):
        data_dir = _user_dir(environ, "XDG_DATA_HOME", ".local/share", platformdirs.user_data_dir)
        if data_dir is not None:
            values = _deep_merge(values, {"storage": {"data_dir": str(data_dir)}})
    values = _expand_home(values, env.get("HOME") if environ is not None else None)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, toml.path if toml else None)) from None


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``; tables merged key by key (an env var changes one key)."""
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} cannot be read: it is a directory") from None
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
        if message.startswith(f"'{key}."):  # the message names the key itself (a moved key)
            lines.append(f"config key {message}{where}")
            continue
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

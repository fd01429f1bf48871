"""Settings: TOML file, CRYPTOJ_* environment overrides, one clear line per bad value."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import (
    ConfigError,
    Credentials,
    CredentialSettings,
    Mode,
    default_config_path,
    load_key_file,
    load_settings,
    resolve_credentials,
    world_readable_secret_warning,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


@pytest.fixture
def toml_file(tmp_path: Path):
    """Writes a TOML config file with the given text and returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "config.toml"
        path.write_text(text)
        return path

    return write


def test_defaults_without_any_file_or_env() -> None:
    settings = load_settings(None, environ={"HOME": "/nonexistent-home"})
    assert settings.mode is Mode.DEMO
    assert settings.market.products == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert settings.exchange.rest_url == "https://api.coinbase.com"
    assert settings.credentials.configured is False


def test_example_file_is_valid_and_equals_the_defaults() -> None:
    """config.example.toml lists every setting with its default: loading it changes nothing."""
    from_example = load_settings(EXAMPLE, environ={"HOME": "/nonexistent-home"})
    defaults = load_settings(None, environ={"HOME": "/nonexistent-home"})
    assert from_example.model_dump() == defaults.model_dump()


def test_example_file_mentions_every_setting() -> None:
    """Every key, in its own table: nested tables ([strategy.market_maker]) have their header."""
    text = EXAMPLE.read_text()
    defaults = load_settings(None, environ={"HOME": "/nonexistent-home"}).model_dump()

    def check(table: str, values: dict[str, object]) -> None:
        assert f"[{table}]" in text, f"[{table}] is missing"
        for key, value in values.items():
            if isinstance(value, dict) and key not in {"starting_balances"}:
                check(f"{table}.{key}", value)
            else:
                assert f"{key} =" in text, f"{table}.{key} is not documented"

    for section, values in defaults.items():
        if isinstance(values, dict):
            check(section, values)
        else:
            assert f"{section} =" in text


def test_toml_values_are_read(toml_file) -> None:
    path = toml_file('mode = "paper"\n[exchange]\nrequest_timeout_s = 3.5\n')
    settings = load_settings(path, environ={})
    assert settings.mode is Mode.PAPER
    assert settings.exchange.request_timeout_s == 3.5


def test_environment_overrides_the_file_with_nested_keys(toml_file) -> None:
    path = toml_file("[exchange]\nrequest_timeout_s = 3.5\n")
    settings = load_settings(
        path,
        environ={
            "CRYPTOJ_EXCHANGE__REQUEST_TIMEOUT_S": "7",
            "CRYPTOJ_MARKET__PRODUCTS": '["ETH-USD"]',
        },
    )
    assert settings.exchange.request_timeout_s == 7
    assert settings.market.products == ["ETH-USD"]


def test_overrides_beat_environment() -> None:
    settings = load_settings(
        None, overrides={"log": {"level": "DEBUG"}}, environ={"CRYPTOJ_LOG__LEVEL": "ERROR"}
    )
    assert settings.log.level == "DEBUG"


def test_bad_value_names_key_value_and_what_is_allowed(toml_file) -> None:
    path = toml_file('[exchange]\nrequest_timeout_s = "soon"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert "exchange.request_timeout_s" in message
    assert "'soon'" in message
    assert "number" in message
    assert "\n" not in message


def test_out_of_range_value_says_the_bound(toml_file) -> None:
    path = toml_file("[exchange]\nprivate_rate_per_s = 100\n")
    with pytest.raises(ConfigError, match=r"private_rate_per_s' = 100: .*less than or equal to 30"):
        load_settings(path, environ={})


def test_bad_enum_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="'mode' = 'foo': Input should be 'demo', 'paper'"):
        load_settings(None, environ={"CRYPTOJ_MODE": "foo"})


def test_unknown_key_is_named(toml_file) -> None:
    path = toml_file("[exchange]\nrequest_timeout = 3\n")
    with pytest.raises(ConfigError, match=r"'exchange\.request_timeout' is not a setting"):
        load_settings(path, environ={})


def test_bad_product_id_is_explained(toml_file) -> None:
    path = toml_file('[market]\nproducts = ["btcusd"]\n')
    with pytest.raises(ConfigError, match="'btcusd' is not a product id like 'BTC-USD'"):
        load_settings(path, environ={})


def test_empty_product_list_is_refused(toml_file) -> None:
    path = toml_file("[market]\nproducts = []\n")
    with pytest.raises(ConfigError, match="at least one product"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("rest_url", "api.coinbase.com", "http:// or https://"),
        ("ws_market_url", "https://x", "ws:// or wss://"),
    ],
)
def test_urls_are_checked(toml_file, key: str, value: str, expected: str) -> None:
    path = toml_file(f'[exchange]\n{key} = "{value}"\n')
    with pytest.raises(ConfigError, match=expected):
        load_settings(path, environ={})


def test_rest_url_trailing_slash_is_removed() -> None:
    settings = load_settings(None, environ={"CRYPTOJ_EXCHANGE__REST_URL": "http://127.0.0.1:9/"})
    assert settings.exchange.rest_url == "http://127.0.0.1:9"


def test_invalid_toml_syntax_is_one_clear_error(toml_file) -> None:
    path = toml_file("[exchange\nrequest_timeout_s = 3\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(path, environ={})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    directory = tmp_path / "config.toml"
    directory.mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(directory, environ={})


def test_default_location_is_used_when_present(tmp_path: Path) -> None:
    home = tmp_path / "home"
    environ = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    saved = dict(os.environ)
    try:
        os.environ.update(environ)
        path = default_config_path()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    path.parent.mkdir(parents=True)
    path.write_text('mode = "replay"\n')
    assert load_settings(None, environ=environ).mode is Mode.REPLAY


def test_environment_is_restored_after_loading() -> None:
    before = dict(os.environ)
    load_settings(None, environ={"CRYPTOJ_MODE": "paper"})
    assert dict(os.environ) == before


def test_secret_values_are_hidden_in_errors_and_reprs(toml_file) -> None:
    path = toml_file('[credentials]\nprivate_key = 12\nkey_name = "organizations/x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "<hidden>" in str(caught.value)
    settings = load_settings(
        None,
        environ={
            "CRYPTOJ_CREDENTIALS__KEY_NAME": "organizations/o/apiKeys/k",
            "CRYPTOJ_CREDENTIALS__PRIVATE_KEY": "TOPSECRET",
        },
    )
    assert "TOPSECRET" not in repr(settings)
    assert "TOPSECRET" not in str(settings.model_dump())
    credentials = resolve_credentials(settings.credentials)
    assert credentials is not None
    assert credentials.private_key == "TOPSECRET"
    assert "TOPSECRET" not in repr(credentials)


def test_paths_expand_the_home_directory() -> None:
    settings = load_settings(
        None, environ={"HOME": "/home/trader", "CRYPTOJ_LOG__FILE": "~/cryptoj.log"}
    )
    assert settings.log.file == Path("/home/trader/cryptoj.log")


class TestCredentials:
    def test_none_configured(self) -> None:
        assert resolve_credentials(CredentialSettings()) is None

    def test_half_a_key_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="must be set together"):
            resolve_credentials(CredentialSettings(key_name="organizations/o/apiKeys/k"))

    def test_portal_key_file(self, tmp_path: Path) -> None:
        path = tmp_path / "key.json"
        path.write_text(json.dumps({"name": "organizations/o/apiKeys/k", "privateKey": "PEM"}))
        credentials = resolve_credentials(CredentialSettings(key_file=path))
        assert isinstance(credentials, Credentials)
        assert (credentials.key_name, credentials.private_key) == (
            "organizations/o/apiKeys/k",
            "PEM",
        )

    def test_key_file_with_id_instead_of_name(self, tmp_path: Path) -> None:
        path = tmp_path / "key.json"
        path.write_text(json.dumps({"id": "uuid-1", "privateKey": "B64"}))
        assert load_key_file(path).key_name == "uuid-1"

    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            ("not json", "not JSON"),
            ("[1, 2]", "expected a JSON object"),
            ('{"name": "x"}', "missing 'name'"),
            ('{"name": "", "privateKey": "k"}', "missing 'name'"),
        ],
    )
    def test_bad_key_files(self, tmp_path: Path, content: str, expected: str) -> None:
        path = tmp_path / "key.json"
        path.write_text(content)
        with pytest.raises(ConfigError, match=expected) as caught:
            load_key_file(path)
        assert "credentials.key_file" in str(caught.value)

    def test_missing_key_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot read it"):
            load_key_file(tmp_path / "absent.json")


def test_world_readable_secret_file_warns(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text("{}")
    path.chmod(0o644)
    warning = world_readable_secret_warning(path)
    assert warning is not None and "chmod 600" in warning
    path.chmod(0o600)
    assert world_readable_secret_warning(path) is None
    assert world_readable_secret_warning(tmp_path / "absent") is None


# ------------------------------------------------------------------ environment sources


def test_products_in_toml_may_be_one_comma_separated_string(toml_file) -> None:
    path = toml_file('[market]\nproducts = "BTC-USD, ETH-USD"\n')
    assert load_settings(path, environ={}).market.products == ["BTC-USD", "ETH-USD"]
    with pytest.raises(ConfigError, match=r"config key 'market\.products' = 5"):
        load_settings(toml_file("[market]\nproducts = 5\n"), environ={})


def test_products_from_the_environment_may_be_a_comma_separated_list() -> None:
    for raw in ("BTC-USD", "BTC-USD,ETH-USD", " BTC-USD , ETH-USD ,", '["BTC-USD", "ETH-USD"]'):
        settings = load_settings(None, environ={"CRYPTOJ_MARKET__PRODUCTS": raw})
        assert settings.market.products[0] == "BTC-USD", raw
    settings = load_settings(None, environ={"CRYPTOJ_MARKET__PRODUCTS": "BTC-USD,ETH-USD"})
    assert settings.market.products == ["BTC-USD", "ETH-USD"]


@pytest.mark.parametrize(
    ("variable", "raw", "words"),
    [
        ("CRYPTOJ_MARKET__PRODUCTS", "[BTC-USD", "CRYPTOJ_MARKET__PRODUCTS = '[BTC-USD': not valid JSON"),
        ("CRYPTOJ_MARKET__PRODUCTS", "", "'market.products'"),
        ("CRYPTOJ_RISK", "garbage", "CRYPTOJ_RISK = 'garbage': not valid JSON"),
        ("CRYPTOJ_MARKET", "{", "CRYPTOJ_MARKET = '{'"),
        ("CRYPTOJ_PAPER", "5", "CRYPTOJ_PAPER = '5': expected a JSON object"),
        ("CRYPTOJ_CREDENTIALS", "-----BEGIN", "CRYPTOJ_CREDENTIALS = <hidden>"),
        ("CRYPTOJ_MODE", "livee", "'mode'"),
    ],
)  # fmt: skip
def test_an_unreadable_variable_is_one_line_naming_it(variable: str, raw: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ={variable: raw})
    message = str(raised.value)
    assert "\n" not in message and words in message, message
    assert "BEGIN" not in message or "CREDENTIALS" not in variable  # secrets never shown


def test_a_whole_section_as_json_and_one_key_combine() -> None:
    settings = load_settings(
        None,
        environ={
            "CRYPTOJ_RISK": '{"max_open_orders": 5}',
            "CRYPTOJ_RISK__REJECT_STORM_COUNT": "3",
            "CRYPTOJ_PAPER__STARTING_BALANCES__EUR": "500",
        },
    )
    assert settings.risk.max_open_orders == 5 and settings.risk.reject_storm_count == 3
    assert settings.paper.starting_balances == {"EUR": 500}


def test_unknown_variables_are_warned_with_the_closest_name() -> None:
    warnings: list[str] = []
    load_settings(
        None,
        environ={
            "CRYPTOJ_MODEE": "paper",
            "CRYPTOJ_RISK__MAX_OPEN_ORDER": "5",
            "CRYPTOJ_NOTHING_LIKE_IT_AT_ALL_XYZ": "1",
            "CRYPTOJ_MODE": "paper",  # valid: no warning
            "CRYPTOJ_BENCH_STRICT": "1",  # a known switch that is not a setting: no warning
            "OTHER_PROGRAM_MODEE": "x",  # not ours
        },
        warn=warnings.append,
    )
    assert warnings == [
        "warning: environment variable CRYPTOJ_MODEE is not a setting and is ignored; "
        "did you mean CRYPTOJ_MODE?",
        "warning: environment variable CRYPTOJ_NOTHING_LIKE_IT_AT_ALL_XYZ is not a setting and "
        "is ignored; see config.example.toml",
        "warning: environment variable CRYPTOJ_RISK__MAX_OPEN_ORDER is not a setting and is "
        "ignored; did you mean CRYPTOJ_RISK__MAX_OPEN_ORDERS?",
    ]


def test_every_setting_has_a_variable_that_is_not_warned_about() -> None:
    from core.config import setting_variable_names

    names = setting_variable_names()
    assert "CRYPTOJ_STRATEGY__MARKET_MAKER__ORDER_SIZE" in names
    assert "CRYPTOJ_MARKET__PRODUCTS" in names
    warnings: list[str] = []
    defaults = load_settings(None, environ={}).model_dump(mode="json")
    environ = {}
    for name in names:
        value: object = defaults
        for part in name[len("CRYPTOJ_") :].lower().split("__"):
            value = value[part] if isinstance(value, dict) else None  # type: ignore[index]
        if value is None or isinstance(value, dict | list):
            continue
        environ[name] = str(value).lower() if isinstance(value, bool) else str(value)
    load_settings(None, environ=environ, warn=warnings.append)
    assert warnings == []


# ------------------------------------------------------------------ no state on the class


def test_load_settings_keeps_no_state_and_leaves_the_environment_alone(toml_file) -> None:
    from core.config import Settings

    before = dict(os.environ)
    path = toml_file('mode = "paper"\n')
    assert load_settings(path, environ={"CRYPTOJ_LOG__LEVEL": "DEBUG"}).log.level == "DEBUG"
    assert dict(os.environ) == before
    assert not hasattr(Settings, "_toml_path")
    # Settings() alone reads neither a file nor the environment: only what it is given.
    assert Settings().mode is Mode.DEMO
    assert Settings(mode="replay").mode is Mode.REPLAY


def test_concurrent_loads_of_different_files_do_not_mix(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    paper = tmp_path / "paper.toml"
    paper.write_text('mode = "paper"\n[market]\nproducts = ["ETH-USD"]\n')
    replay = tmp_path / "replay.toml"
    replay.write_text('mode = "replay"\n[market]\nproducts = ["SOL-USD"]\n')

    def load(path: Path) -> tuple[Mode, str]:
        settings = load_settings(path, environ={})
        return settings.mode, settings.market.products[0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(load, [paper, replay] * 20))
    assert results == [(Mode.PAPER, "ETH-USD"), (Mode.REPLAY, "SOL-USD")] * 20


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes('mode = "d\xe9mo"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 0xe9 at offset 9\)"):
        load_settings(path, environ={})


# ------------------------------------------------------------------ bounds


def _numeric_keys() -> list[tuple[str, ...]]:
    """Every int, float and Decimal setting, as a path of keys."""
    from decimal import Decimal

    from pydantic import BaseModel

    from core.config import Settings

    found: list[tuple[str, ...]] = []

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, (*prefix, name))
            elif annotation in (int, float, Decimal):
                found.append((*prefix, name))

    walk(Settings, ())
    return found


def _nested(path: tuple[str, ...], value: object) -> dict[str, object]:
    result: dict[str, object] = {path[-1]: value}
    for part in reversed(path[:-1]):
        result = {part: result}
    return result


NUMERIC_KEYS = _numeric_keys()


@pytest.mark.parametrize("path", NUMERIC_KEYS, ids=[".".join(p) for p in NUMERIC_KEYS])
@pytest.mark.parametrize("value", ["1e400", "-1e400", "inf", "nan", "-1", "1e300"])
def test_every_number_is_bounded(path: tuple[str, ...], value: str) -> None:
    """A typo (an exponent, a sign, a pasted number) is refused with the key named, never
    taken as a size, a balance or a timeout."""
    key = ".".join(path)
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        load_settings(None, overrides=_nested(path, value), environ={})


def test_the_bounds_leave_the_defaults_and_sensible_values_alone() -> None:
    assert len(NUMERIC_KEYS) > 40
    settings = load_settings(
        None,
        overrides={
            "paper": {"starting_balances": {"USD": "1000000000", "BTC": "0"}},
            "strategy": {"market_maker": {"order_size": "0.5", "max_inventory": "10"}},
            "risk": {"max_order_notional": "1e9"},
        },
        environ={},
    )
    assert settings.paper.starting_balances["BTC"] == 0


# ------------------------------------------------------------------ strategy tables


def test_strategy_tables_are_read_from_toml_and_the_environment(toml_file) -> None:
    from decimal import Decimal

    path = toml_file(
        '[strategy]\nname = "market_maker"\nproduct_id = "ETH-USD"\n'
        "[strategy.market_maker]\norder_size = 0.01\nmax_inventory = 0.5\n"
        "[strategy.trend]\nfast_window_s = 10\n"
    )
    settings = load_settings(path, environ={"CRYPTOJ_STRATEGY__TREND__SLOW_WINDOW_S": "60"})
    assert settings.strategy.name == "market_maker"
    assert settings.strategy.market_maker.order_size == Decimal("0.01")
    assert settings.strategy.market_maker.max_inventory == Decimal("0.5")
    assert settings.strategy.market_maker.half_spread_bps == Decimal("5")  # default kept
    assert (settings.strategy.trend.fast_window_s, settings.strategy.trend.slow_window_s) == (
        10.0,
        60.0,
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("mm_order_size", "strategy.market_maker.order_size"),
        ("mm_half_spread_bps", "strategy.market_maker.half_spread_bps"),
        ("mm_max_inventory", "strategy.market_maker.max_inventory"),
        ("mm_requote_s", "strategy.market_maker.requote_s"),
        ("trend_fast_window_s", "strategy.trend.fast_window_s"),
        ("trend_slow_window_s", "strategy.trend.slow_window_s"),
        ("trend_order_size", "strategy.trend.order_size"),
    ],
)
def test_an_old_flat_strategy_key_names_its_new_place(toml_file, old: str, new: str) -> None:
    path = toml_file(f"[strategy]\n{old} = 1\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})
    message = str(raised.value)
    assert message.startswith(f"config key 'strategy.{old}' moved to '{new}'"), message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=f"moved to '{new}'"):
        load_settings(None, environ={f"CRYPTOJ_STRATEGY__{old.upper()}": "1"})


def test_one_registry_names_the_strategies() -> None:
    from core.config import strategy_names
    from core.strategy.registry import STRATEGIES, STRATEGY_NAMES

    assert set(STRATEGIES) == set(strategy_names()) == {"market_maker", "trend"}
    assert ("none", *STRATEGIES) == STRATEGY_NAMES
    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ={"CRYPTOJ_STRATEGY__NAME": "scalper"})
    assert "'none', 'market_maker', 'trend'" in str(raised.value)
    for name, entry in STRATEGIES.items():
        settings = load_settings(None, environ={"CRYPTOJ_STRATEGY__NAME": name})
        assert isinstance(settings.strategy.section(name), entry.settings_type)


# ------------------------------------------------------------------ whatever is typed


_variable_names = st.sampled_from(
    [
        "CRYPTOJ_MODE",
        "CRYPTOJ_RISK",
        "CRYPTOJ_MARKET",
        "CRYPTOJ_MARKET__PRODUCTS",
        "CRYPTOJ_PAPER__STARTING_BALANCES",
        "CRYPTOJ_PAPER__STARTING_BALANCES__USD",
        "CRYPTOJ_STRATEGY",
        "CRYPTOJ_STRATEGY__MARKET_MAKER",
        "CRYPTOJ_STRATEGY__MARKET_MAKER__ORDER_SIZE",
        "CRYPTOJ_STRATEGY__MM_ORDER_SIZE",
        "CRYPTOJ_SIM__PORT",
        "CRYPTOJ_SIM__HOST",
        "CRYPTOJ_EXCHANGE__REQUEST_TIMEOUT_S",
        "CRYPTOJ_LOG__LEVEL",
        "CRYPTOJ_STORAGE__DATA_DIR",
        "CRYPTOJ_CREDENTIALS",
    ]
) | st.from_regex(r"CRYPTOJ_[A-Z_]{0,30}", fullmatch=True)
_values = st.sampled_from(
    ["", "{", "[", "[]", "{}", "null", "1e400", "-1", "nan", "inf", '{"x": 1}', "a,b", "BTC-USD"]
) | st.text(max_size=30)


@given(environ=st.dictionaries(_variable_names, _values, max_size=4))
@settings(max_examples=150, derandomize=True, deadline=None, database=None)
def test_any_environment_gives_settings_or_one_line_per_problem(environ: dict[str, str]) -> None:
    """Nothing a shell can hold makes loading raise anything but ``ConfigError`` (the CLI's
    exit code 2), and its message names a key or a variable on every line."""
    environ = {name: value.replace("\x00", "") for name, value in environ.items()}
    try:
        load_settings(None, environ=environ, warn=lambda line: None)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            assert line.startswith(("config key '", "environment variable CRYPTOJ_")), line

"""Settings: TOML file, CRYPTOJ_* environment overrides, one clear line per bad value."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

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

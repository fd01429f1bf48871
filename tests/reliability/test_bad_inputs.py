"""Bad input from the trader: config files, command-line flags and order ticket fields.

Each mistake must give one clear message that names what is wrong (the config key, the flag,
the ticket field) and, for the command line, exit code 2 without a traceback. Config files and
flags go through the real ``cryptoj`` command in a subprocess (all cases run concurrently, once
per module, so the whole set costs a few seconds); ticket fields through ``core.ticket``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import OrderType, Product, Side, TimeInForce
from core.sim.products import default_product_specs
from core.ticket import TicketEntry, TicketField, check_ticket
from cryptoj_tui.cli import main

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z

# (case id, TOML text, the key the one-line message must name)
CONFIG_MISTAKES: tuple[tuple[str, str, str], ...] = (
    ("mode typo", 'mode = "livee"\n', "'mode'"),
    ("unknown top-level key", 'modee = "demo"\n', "'modee' is not a setting"),
    ("section as a value", 'exchange = "coinbase"\n', "'exchange'"),
    ("rest url without scheme", '[exchange]\nrest_url = "api.coinbase.com"\n', "'exchange.rest_url'"),
    ("ws url with http scheme", '[exchange]\nws_market_url = "https://x"\n', "'exchange.ws_market_url'"),
    ("timeout as words", '[exchange]\nrequest_timeout_s = "ten"\n', "'exchange.request_timeout_s'"),
    ("rate above coinbase's", "[exchange]\nprivate_rate_per_s = 100\n", "'exchange.private_rate_per_s'"),
    ("tiny ws message limit", "[exchange]\nws_max_message_bytes = 10\n", "'exchange.ws_max_message_bytes'"),
    ("credential key typo", '[credentials]\napi_key = "x"\n', "'credentials.api_key' is not a setting"),
    ("private key as a number", "[credentials]\nprivate_key = 5\n", "'credentials.private_key' = <hidden>"),
    ("key file as a number", "[credentials]\nkey_file = 5\n", "'credentials.key_file'"),
    ("no products", "[market]\nproducts = []\n", "'market.products'"),
    ("lower-case product", '[market]\nproducts = ["btc-usd"]\n', "'market.products'"),
    ("product not a pair", '[market]\nproducts = ["BTC"]\n', "'market.products'"),
    ("zero stale limit", "[market]\nstale_after_s = 0\n", "'market.stale_after_s'"),
    ("sim port out of range", "[sim]\nport = 70000\n", "'sim.port'"),
    ("sim seed as words", '[sim]\nseed = "abc"\n', "'sim.seed'"),
    ("negative order notional", "[risk]\nmax_order_notional = -5\n", "'risk.max_order_notional'"),
    ("price band above 100%", "[risk]\nprice_band_bps = 20000\n", "'risk.price_band_bps'"),
    ("hour 24", "[risk]\nday_boundary_utc_hour = 24\n", "'risk.day_boundary_utc_hour'"),
    ("fee of 50%", "[paper]\nmaker_fee_rate = 0.5\n", "'paper.maker_fee_rate'"),
    ("balance in words", '[paper]\nstarting_balances = { USD = "lots" }\n', "'paper.starting_balances.USD'"),
    ("unknown strategy", '[strategy]\nname = "scalper"\n', "'strategy.name'"),
    ("zero quote size", "[strategy.market_maker]\norder_size = 0\n", "'strategy.market_maker.order_size'"),
    ("quote size 1e400", '[strategy.market_maker]\norder_size = "1e400"\n', "'strategy.market_maker.order_size' = '1e400'"),
    ("infinite requote", '[strategy.market_maker]\nrequote_s = "inf"\n', "'strategy.market_maker.requote_s'"),
    ("huge trend window", "[strategy.trend]\nslow_window_s = 1e300\n", "'strategy.trend.slow_window_s'"),
    ("old flat strategy key", "[strategy]\nmm_order_size = 0.1\n", "'strategy.mm_order_size' moved to 'strategy.market_maker.order_size'"),
    ("strategy product lower-case", '[strategy]\nproduct_id = "btc-usd"\n', "'strategy.product_id'"),
    ("negative paper balance", "[paper]\nstarting_balances = { USD = -5 }\n", "'paper.starting_balances.USD'"),
    ("paper balance 1e400", '[paper]\nstarting_balances = { USD = "1e400" }\n', "'paper.starting_balances.USD'"),
    ("paper balance not a currency", "[paper]\nstarting_balances = { usd = 5 }\n", "'paper.starting_balances'"),
    ("notional NaN", '[risk]\nmax_order_notional = "NaN"\n', "'risk.max_order_notional'"),
    ("notional 1e400", '[risk]\nmax_drawdown = "1e400"\n', "'risk.max_drawdown'"),
    ("timeout infinite", "[exchange]\nrequest_timeout_s = inf\n", "'exchange.request_timeout_s'"),
    ("sim seed negative", "[sim]\nseed = -1\n", "'sim.seed'"),
    ("sim host with a scheme", '[sim]\nhost = "http://localhost"\n', "'sim.host'"),
    ("yes/no as a word", '[headless]\ncancel_open_orders_on_exit = "maybe"\n', "'headless.cancel_open_orders_on_exit'"),
    ("data dir as a list", "[storage]\ndata_dir = [1]\n", "'storage.data_dir'"),
    ("log level typo", '[log]\nlevel = "VERBOSE"\n', "'log.level'"),
)  # fmt: skip

# (case id, arguments, words the error must contain, whether argparse reports it with usage)
FLAG_MISTAKES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("unknown flag", ("--bogus",), "unrecognized arguments: --bogus"),
    ("abbreviated --live", ("--liv",), "unrecognized arguments: --liv"),
    ("abbreviated --paper", ("--pap", "--headless"), "unrecognized arguments: --pap"),
    ("abbreviated doctor flag", ("doctor", "--js"), "unrecognized arguments: --js"),
    ("abbreviated sim flag", ("sim", "--por", "5"), "unrecognized arguments: --por 5"),
    ("doctor typo", ("doctor", "--jsn"), "unrecognized arguments: --jsn"),
    ("sim bad host", ("sim", "--host", "bad host"), "'sim.host' = 'bad host'"),
    ("sim foreign address", ("sim", "--host", "192.0.2.1"), "not an address of this machine"),
    ("bad log level", ("--log-level", "LOUD"), "argument --log-level: invalid choice: 'LOUD'"),
    ("two modes", ("--paper", "--live"), "argument --live: not allowed with argument --paper"),
    ("unknown command", ("tradez",), "invalid choice: 'tradez'"),
    ("doctor timeout zero", ("doctor", "--timeout", "0"), "argument --timeout: '0' must be more than 0"),
    ("doctor timeout words", ("doctor", "--timeout", "soon"), "'soon' is not a number of seconds"),
    ("sim port words", ("sim", "--port", "http"), "argument --port: invalid int value: 'http'"),
    ("sim key algorithm", ("sim", "--key-algorithm", "RSA"), "argument --key-algorithm: invalid choice"),
    ("sim fault plan", ("sim", "--faults", "explode:1"), "--faults:"),
    ("missing config file", ("--config", "/nonexistent/cryptoj.toml", "doctor"), "does not exist"),
    ("replay of no file", ("--replay", "/nonexistent/feed.jsonl"), "--replay /nonexistent/feed.jsonl: no such file"),
    ("live without a key", ("--live",), "--live needs a Coinbase API key"),
    ("bench-book of no file", ("bench-book", "/nonexistent/feed.jsonl"), "no such file"),
)  # fmt: skip


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str


def _run_cli(args: tuple[str, ...], home: Path) -> CliRun:
    # A clean environment: no CRYPTOJ_* from the developer's shell, a HOME with no config.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRYPTOJ_")}
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / "config")
    done = subprocess.run(
        [sys.executable, "-m", "cryptoj_tui", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return CliRun(done.returncode, done.stdout, done.stderr)


# Cases that also go through a real ``cryptoj`` subprocess (every case runs in-process through
# ``cryptoj_tui.cli.main``, the same code, which is much cheaper on a loaded machine).
SUBPROCESS_CONFIG_CASES = (
    "mode typo",
    "unknown top-level key",
    "private key as a number",
    "hour 24",
)
SUBPROCESS_FLAG_CASES = ("unknown flag", "two modes", "live without a key", "replay of no file")


def _config_file(directory: Path, case: str, toml: str) -> Path:
    path = directory / f"{case.replace(' ', '_').replace('/', '_')}.toml"
    path.write_text(toml)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> Mapping[str, CliRun]:
    """The flag cases and a few config cases through the real ``cryptoj`` in subprocesses, run
    concurrently: case id -> result."""
    home = tmp_path_factory.mktemp("home")
    jobs = {case: args for case, args, _ in FLAG_MISTAKES if case in SUBPROCESS_FLAG_CASES}
    for case, toml, _ in CONFIG_MISTAKES:
        if case in SUBPROCESS_CONFIG_CASES:
            jobs[case] = ("--config", str(_config_file(home, case, toml)), "doctor")
    syntax = home / "syntax.toml"
    syntax.write_text('[exchange\nrest_url = "https://api.coinbase.com"\n')
    jobs["toml syntax"] = ("--config", str(syntax), "doctor")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(_run_cli, args, home) for case, args in jobs.items()}
        return {case: future.result() for case, future in futures.items()}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CRYPTOJ_* variables and a HOME without a config file, for in-process CLI runs."""
    for key in list(os.environ):
        if key.startswith("CRYPTOJ_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path


def _error_lines(run: CliRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("case", "toml", "names"), CONFIG_MISTAKES, ids=[c[0] for c in CONFIG_MISTAKES]
)
def test_a_config_mistake_is_one_line_naming_the_key(
    clean_environment: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    toml: str,
    names: str,
) -> None:
    path = _config_file(clean_environment, case, toml)
    code = main(["--config", str(path), "doctor"])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("cryptoj: config key "), line
    assert names in line, line
    assert out == ""
    assert "https://errors.pydantic.dev" not in line  # our words, not a link


@pytest.mark.parametrize("case", SUBPROCESS_CONFIG_CASES)
def test_the_real_command_exits_2_with_the_same_line(
    cli_runs: Mapping[str, CliRun], case: str
) -> None:
    run = cli_runs[case]
    names = next(names for c, _, names in CONFIG_MISTAKES if c == case)
    lines = _error_lines(run)
    assert run.returncode == 2, run
    assert len(lines) == 1 and names in lines[0], lines
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_a_toml_syntax_error_says_where(cli_runs: Mapping[str, CliRun]) -> None:
    run = cli_runs["toml syntax"]
    lines = _error_lines(run)
    assert run.returncode == 2 and len(lines) == 1, run
    assert "syntax.toml is not valid TOML" in lines[0] and "line 1" in lines[0], lines[0]


def _assert_flag_message(code: object, out: str, err: str, words: str) -> None:
    assert code == 2, (out, err)
    assert words in err + out, err + out
    assert "Traceback" not in err + out
    # The last line is the message (argparse prints its usage line above it).
    last = ([line for line in err.splitlines() if line.strip()] or out.splitlines())[-1]
    assert words in last, last


@pytest.mark.parametrize(
    ("case", "args", "words"), FLAG_MISTAKES, ids=[c[0] for c in FLAG_MISTAKES]
)
def test_a_flag_mistake_exits_2_and_says_which(
    clean_environment: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    args: tuple[str, ...],
    words: str,
) -> None:
    try:
        code: object = main(list(args))
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out, err = capsys.readouterr()
    _assert_flag_message(code, out, err, words)


@pytest.mark.parametrize("case", SUBPROCESS_FLAG_CASES)
def test_the_real_command_exits_2_for_a_bad_flag(cli_runs: Mapping[str, CliRun], case: str) -> None:
    run = cli_runs[case]
    words = next(words for c, _, words in FLAG_MISTAKES if c == case)
    _assert_flag_message(run.returncode, run.stdout, run.stderr, words)


def test_a_bad_sim_option_value_is_one_line(
    clean_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Values argparse accepts but the sim settings refuse go through the same one-line path."""
    code = main(["sim", "--port", "70000"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert lines and lines[0].startswith("cryptoj: config key 'sim.port' = 70000:"), lines
    assert "less than or equal to 65535" in err
    assert len(lines) == 1, f"the message spans {len(lines)} lines: {lines}"


# --------------------------------------------------------------------------- order ticket


PRODUCT: Product = next(
    spec.product for spec in default_product_specs() if spec.product.product_id == "BTC-USD"
)


def _limit(**fields: object) -> TicketEntry:
    base: dict[str, object] = {
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "size": "0.01",
        "price": "68000.00",
    }
    base.update(fields)
    return TicketEntry(**base)  # type: ignore[arg-type]


# (case id, entry, the field that must be named, words in its message)
TICKET_MISTAKES: tuple[tuple[str, TicketEntry, TicketField, str], ...] = (
    ("size empty", _limit(size=""), TicketField.SIZE, "required"),
    ("size words", _limit(size="lots"), TicketField.SIZE, "'lots' is not a number"),
    ("size zero", _limit(size="0"), TicketField.SIZE, "must be more than 0"),
    ("size negative", _limit(size="-1"), TicketField.SIZE, "must be more than 0"),
    ("size NaN", _limit(size="NaN"), TicketField.SIZE, "is not a number"),
    ("size infinite", _limit(size="Infinity"), TicketField.SIZE, "is not a number"),
    ("size below minimum", _limit(size="0.000000001"), TicketField.SIZE, "below the minimum"),
    ("size above maximum", _limit(size="5000"), TicketField.SIZE, "above the maximum"),
    ("size exponent", _limit(size="1e400"), TicketField.SIZE, "is not a number"),  # no exponents
    ("size off increment", _limit(size="0.000000015"), TicketField.SIZE, "increment"),
    ("size pasted novel", _limit(size="1" * 500), TicketField.SIZE, "more than 40 characters"),
    ("price empty", _limit(price=""), TicketField.PRICE, "required"),
    ("price words", _limit(price="market"), TicketField.PRICE, "is not a number"),
    ("price zero", _limit(price="0"), TicketField.PRICE, "must be more than 0"),
    ("price off tick", _limit(price="68000.005"), TicketField.PRICE, "tick 0.01"),
    ("stop missing", _limit(order_type=OrderType.STOP_LIMIT, stop_price=""), TicketField.STOP, "required"),
    ("stop off tick", _limit(order_type=OrderType.STOP_LIMIT, stop_price="1.001"), TicketField.STOP, "tick"),
    ("stop-limit IOC", _limit(order_type=OrderType.STOP_LIMIT, stop_price="69000", time_in_force=TimeInForce.IOC), TicketField.TIME_IN_FORCE, "stop-limit"),
    ("GTD without end", _limit(time_in_force=TimeInForce.GTD), TicketField.END_TIME, "required"),
    ("GTD end words", _limit(time_in_force=TimeInForce.GTD, end_time="soon"), TicketField.END_TIME, "not a duration"),
    ("GTD end in the past", _limit(time_in_force=TimeInForce.GTD, end_time="2020-01-01T00:00:00"), TicketField.END_TIME, "future"),
    ("post-only market", _limit(order_type=OrderType.MARKET, post_only=True), TicketField.POST_ONLY, "market"),
    ("post-only IOC", _limit(post_only=True, time_in_force=TimeInForce.IOC), TicketField.POST_ONLY, "cannot be"),
    ("post-only stop", _limit(order_type=OrderType.STOP_LIMIT, stop_price="69000", post_only=True), TicketField.POST_ONLY, "stop-limit"),
)  # fmt: skip


@pytest.mark.parametrize(
    ("case", "entry", "field", "words"),
    [pytest.param(*case, id=case[0]) for case in TICKET_MISTAKES],
)
def test_each_ticket_field_mistake_names_its_field(
    case: str, entry: TicketEntry, field: TicketField, words: str
) -> None:
    check = check_ticket(entry, PRODUCT, now=NOW)
    assert not check.ok and check.spec is None
    assert [problem.field for problem in check.problems] == [field], check.problems
    message = check.problem(field)
    assert message is not None and words in message, message
    assert str(check.problems[0]).startswith(f"{field.value}: ")
    assert "\n" not in str(check.problems[0]) and len(str(check.problems[0])) < 160


def test_a_limit_only_product_refuses_market_orders() -> None:
    limit_only = dataclasses.replace(PRODUCT, limit_only=True)
    check = check_ticket(_limit(order_type=OrderType.MARKET), limit_only, now=NOW)
    assert check.problem(TicketField.TYPE) == "BTC-USD accepts limit orders only"


def test_several_bad_fields_give_one_message_each() -> None:
    entry = _limit(size="abc", price="-1", time_in_force=TimeInForce.GTD, end_time="yesterday")
    check = check_ticket(entry, PRODUCT, now=NOW)
    assert [p.field for p in check.problems] == [
        TicketField.SIZE,
        TicketField.PRICE,
        TicketField.END_TIME,
    ]


def test_a_good_ticket_passes() -> None:
    # A comma is a decimal mark, never grouping ("68,000.00" is refused): see core/ticket.py.
    check = check_ticket(_limit(size=" 0,01 ", price="68000.00"), PRODUCT, now=NOW)
    assert check.ok and check.spec is not None
    assert check.spec.base_size == Decimal("0.01") and check.spec.limit_price == Decimal("68000.00")


@pytest.mark.parametrize(
    "end_time",
    [
        "99999999999d",  # a duration past datetime's range
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
    ],
)
def test_an_end_time_out_of_range_is_a_field_message(end_time: str) -> None:
    check = check_ticket(_limit(time_in_force=TimeInForce.GTD, end_time=end_time), PRODUCT, now=NOW)
    assert check.problem(TicketField.END_TIME) is not None


typed = st.text(
    alphabet=st.sampled_from("0123456789.,_-+eE nNaIifty:TZdhms\u00a0١٢٣٤"), max_size=24
) | st.text(max_size=12)


@given(size=typed, price=typed, stop=typed)
@settings(max_examples=300, derandomize=True, deadline=None, database=None)
def test_whatever_is_typed_in_the_number_fields_gets_a_message_or_a_spec(
    size: str, price: str, stop: str
) -> None:
    for order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.MARKET):
        entry = TicketEntry(Side.SELL, order_type, size, price, stop)
        check = check_ticket(entry, PRODUCT, now=NOW)
        if check.ok:
            assert check.spec is not None and check.spec.base_size is not None
            assert check.spec.base_size > 0 and PRODUCT.is_size_on_increment(check.spec.base_size)
            if check.spec.limit_price is not None:
                assert check.spec.limit_price > 0 and PRODUCT.is_price_on_tick(
                    check.spec.limit_price
                )
        else:
            assert check.problems and all(p.message for p in check.problems)
            assert len({p.field for p in check.problems}) == len(check.problems)


# --------------------------------------------------------------------------- local resources

# A well-formed key for the cases that need one; a malformed one for --live.
MALFORMED_KEY = (
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI-not-base64\n-----END EC PRIVATE KEY-----\n"
)


@dataclass(frozen=True)
class LocalCase:
    """One bad local input through the real command: environment, arguments, and the words
    the single stderr line must contain."""

    args: tuple[str, ...]
    env: Mapping[str, str]
    words: str


def _local_cases(home: Path, taken_port: int) -> dict[str, LocalCase]:
    """The files each case needs are made here, under ``home``."""
    a_file = home / "a-file"
    a_file.write_text("not a directory\n")
    latin1 = home / "latin1.toml"
    latin1.write_bytes('mode = "d\xe9mo"\n'.encode("latin-1"))
    not_db = home / "not-db"
    not_db.mkdir()
    (not_db / "journal-paper.sqlite3").write_text("my notes\n" * 50)
    corrupt = home / "corrupt"
    corrupt.mkdir()
    _corrupt_journal(corrupt / "journal-paper.sqlite3")
    return {
        "products as one word": LocalCase(
            ("doctor",), {"CRYPTOJ_MARKET__PRODUCTS": "btc-usd"}, "'market.products'"
        ),
        "section as garbage": LocalCase(
            ("doctor",), {"CRYPTOJ_RISK": "garbage"}, "CRYPTOJ_RISK = 'garbage': not valid JSON"
        ),
        "section as broken json": LocalCase(
            ("doctor",), {"CRYPTOJ_MARKET": "{"}, "CRYPTOJ_MARKET = '{': not valid JSON"
        ),
        "section as a json list": LocalCase(
            ("doctor",), {"CRYPTOJ_RISK": "[1]"}, "CRYPTOJ_RISK = '[1]': expected a JSON object"
        ),
        "balances as garbage": LocalCase(
            ("doctor",),
            {"CRYPTOJ_PAPER__STARTING_BALANCES": "lots"},
            "CRYPTOJ_PAPER__STARTING_BALANCES = 'lots'",
        ),
        "negative balance from env": LocalCase(
            ("doctor",),
            {"CRYPTOJ_PAPER__STARTING_BALANCES__USD": "-5"},
            "'paper.starting_balances.USD' = '-5'",
        ),
        "quote size 1e400 from env": LocalCase(
            ("doctor",),
            {"CRYPTOJ_STRATEGY__MARKET_MAKER__ORDER_SIZE": "1e400"},
            "'strategy.market_maker.order_size' = '1e400'",
        ),
        "old flat strategy variable": LocalCase(
            ("doctor",),
            {"CRYPTOJ_STRATEGY__MM_ORDER_SIZE": "0.1"},
            "moved to 'strategy.market_maker.order_size'",
        ),
        "config not utf-8": LocalCase(
            ("--config", str(latin1), "doctor"), {}, "latin1.toml is not UTF-8 text"
        ),
        "data dir is a file": LocalCase(
            ("--headless",),
            {"CRYPTOJ_STORAGE__DATA_DIR": str(a_file)},
            "'storage.data_dir' = '" + str(a_file) + "': it is a file",
        ),
        "data dir under a file": LocalCase(
            ("--headless",),
            {"CRYPTOJ_STORAGE__DATA_DIR": str(a_file / "data")},
            "'storage.data_dir'",
        ),
        "log file under a file": LocalCase(
            ("bench-book", str(home / "none.jsonl")),
            {"CRYPTOJ_LOG__FILE": str(a_file / "cryptoj.log")},
            "'log.file'",
        ),
        "log file is a directory": LocalCase(
            ("bench-book", str(home / "none.jsonl")),
            {"CRYPTOJ_LOG__FILE": str(home)},
            "'log.file' = '" + str(home) + "': it is a directory",
        ),
        "sim port in use": LocalCase(
            ("sim", "--port", str(taken_port)),
            {},
            f"127.0.0.1:{taken_port} (Address already in use)",
        ),
        "demo sim port in use": LocalCase(
            ("--headless",),
            {"CRYPTOJ_SIM__PORT": str(taken_port)},
            f"127.0.0.1:{taken_port} (Address already in use)",
        ),
        "sim host unknown": LocalCase(
            ("sim", "--host", "no-such-host.invalid"), {}, "'sim.host' = 'no-such-host.invalid'"
        ),
        "demo sim host unknown": LocalCase(
            ("--headless",), {"CRYPTOJ_SIM__HOST": "no-such-host.invalid"}, "'sim.host'"
        ),
        "record to an unwritable file": LocalCase(
            ("record", "--out", str(a_file / "feed.jsonl")), {}, "cannot write"
        ),
        "malformed key with --live": LocalCase(
            ("--live",),
            {
                "CRYPTOJ_CREDENTIALS__KEY_NAME": "organizations/o/apiKeys/k",
                "CRYPTOJ_CREDENTIALS__PRIVATE_KEY": MALFORMED_KEY,
            },
            "credentials: the private key",
        ),
        "journal not a database": LocalCase(
            ("--paper", "--headless"),
            {"CRYPTOJ_STORAGE__DATA_DIR": str(not_db)},
            "journal-paper.sqlite3 is not a database",
        ),
        "journal corrupt": LocalCase(
            ("--paper", "--headless"),
            {"CRYPTOJ_STORAGE__DATA_DIR": str(corrupt)},
            "journal-paper.sqlite3 is corrupt",
        ),
    }


def _corrupt_journal(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100)
    data = bytearray(path.read_bytes())
    data[100:4000] = b"\xff" * 3900
    path.write_bytes(bytes(data))


def _run_with_env(args: tuple[str, ...], home: Path, env: Mapping[str, str]) -> CliRun:
    base = {key: value for key, value in os.environ.items() if not key.startswith("CRYPTOJ_")}
    base.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"))
    base.update(XDG_DATA_HOME=str(home / "data"), XDG_STATE_HOME=str(home / "state"))
    base.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "cryptoj_tui", *args],
        env=base,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return CliRun(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def local_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, LocalCase], dict[str, CliRun]]]:
    """Every local-resource case through the real ``cryptoj``, concurrently, with one port
    held by a listening socket for the port-in-use cases."""
    import socket

    home = tmp_path_factory.mktemp("local-home")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cases = _local_cases(home, taken.getsockname()[1])
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {
                case: pool.submit(_run_with_env, spec.args, home, spec.env)
                for case, spec in cases.items()
            }
            runs = {case: future.result() for case, future in futures.items()}
    yield cases, runs


LOCAL_CASE_IDS = (
    "products as one word",
    "section as garbage",
    "section as broken json",
    "section as a json list",
    "balances as garbage",
    "negative balance from env",
    "quote size 1e400 from env",
    "old flat strategy variable",
    "config not utf-8",
    "data dir is a file",
    "data dir under a file",
    "log file under a file",
    "log file is a directory",
    "sim port in use",
    "demo sim port in use",
    "sim host unknown",
    "demo sim host unknown",
    "record to an unwritable file",
    "malformed key with --live",
    "journal not a database",
    "journal corrupt",
)


@pytest.mark.parametrize("case", LOCAL_CASE_IDS)
def test_a_bad_local_input_is_one_line_and_exit_2(
    local_runs: tuple[dict[str, LocalCase], dict[str, CliRun]], case: str
) -> None:
    cases, runs = local_runs
    run = runs[case]
    lines = _error_lines(run)
    assert run.returncode == 2, run
    assert "Traceback" not in run.stderr + run.stdout
    assert len(lines) == 1, lines
    assert lines[0].startswith(("cryptoj: ", "cryptoj record: ")), lines
    assert cases[case].words in lines[0], lines[0]


def test_the_local_cases_are_all_run(
    local_runs: tuple[dict[str, LocalCase], dict[str, CliRun]],
) -> None:
    assert set(local_runs[0]) == set(LOCAL_CASE_IDS)


def test_live_with_a_malformed_key_never_asks_for_live(
    local_runs: tuple[dict[str, LocalCase], dict[str, CliRun]],
) -> None:
    run = local_runs[1]["malformed key with --live"]
    assert "Type LIVE" not in run.stderr and "not-base64" not in run.stderr


def test_an_unknown_variable_is_a_warning_naming_the_closest(tmp_path: Path) -> None:
    """``CRYPTOJ_MODEE=paper`` must not pass silently (an unknown TOML key is an error; an
    unknown variable is a warning, since the environment is shared with other programs)."""
    run = _run_with_env(
        ("--live",), tmp_path, {"CRYPTOJ_MODEE": "paper", "CRYPTOJ_EXCHANGE__TIMEOUT_S": "5"}
    )
    lines = _error_lines(run)
    assert lines[:2] == [
        "cryptoj: warning: environment variable CRYPTOJ_EXCHANGE__TIMEOUT_S is not a setting "
        "and is ignored; did you mean CRYPTOJ_EXCHANGE__REQUEST_TIMEOUT_S?",
        "cryptoj: warning: environment variable CRYPTOJ_MODEE is not a setting and is ignored; "
        "did you mean CRYPTOJ_MODE?",
    ], lines
    assert run.returncode == 2 and "--live needs a Coinbase API key" in lines[2]


def test_what_cryptoj_creates_is_private(tmp_path: Path) -> None:
    """The data dir (0700) and a new log file (0600) are created before anything runs; here
    --live stops right after for want of a key."""
    import stat

    data_dir = tmp_path / "fresh" / "data"
    log = tmp_path / "fresh" / "logs" / "cryptoj.log"
    run = _run_with_env(
        ("--live",),
        tmp_path,
        {"CRYPTOJ_STORAGE__DATA_DIR": str(data_dir), "CRYPTOJ_LOG__FILE": str(log)},
    )
    assert run.returncode == 2, run
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700


# --------------------------------------------------------------------------- permissions
# Root may write anything, so these cases run the command as an unprivileged user (nobody,
# through setpriv) when the suite runs as root; as themselves otherwise.

NOBODY = 65534


def _unprivileged_prefix() -> list[str] | None:
    """The command prefix that drops root, [] when not root, None when it cannot be done."""
    import shutil

    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's tmp dirs are 0700 to root)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="cryptoj-perm-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _run_unprivileged(args: tuple[str, ...], home: Path, env: Mapping[str, str]) -> CliRun:
    prefix = _unprivileged_prefix()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    base = {key: value for key, value in os.environ.items() if not key.startswith("CRYPTOJ_")}
    base.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), **env)
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "cryptoj_tui", *args],
        env=base,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=home,
    )
    return CliRun(done.returncode, done.stdout, done.stderr)


def _writable_home(shared_dir: Path) -> Path:
    home = shared_dir / "home"
    home.mkdir()
    home.chmod(0o777)
    return home


def test_a_read_only_journal_is_one_line(shared_dir: Path) -> None:
    import sqlite3

    data = shared_dir / "data"
    data.mkdir()
    data.chmod(0o777)  # the directory is writable: only the journal file is not
    journal = data / "journal-paper.sqlite3"
    with sqlite3.connect(journal) as db:
        db.execute("CREATE TABLE t (x)")
    journal.chmod(0o444)
    run = _run_unprivileged(
        ("--paper", "--headless"),
        _writable_home(shared_dir),
        {"CRYPTOJ_STORAGE__DATA_DIR": str(data)},
    )
    lines = _error_lines(run)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run
    assert len(lines) == 1, lines
    assert f"journal {journal} cannot be written (read-only); run: chmod u+w" in lines[0]


def test_an_unwritable_data_dir_is_one_line(shared_dir: Path) -> None:
    data = shared_dir / "data"
    data.mkdir()
    data.chmod(0o555)
    run = _run_unprivileged(
        ("--headless",), _writable_home(shared_dir), {"CRYPTOJ_STORAGE__DATA_DIR": str(data)}
    )
    lines = _error_lines(run)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run
    assert lines == [
        f"cryptoj: config key 'storage.data_dir' = '{data}': the directory is not writable; "
        f"run: chmod u+rwx {data}, or point it at a directory you can write"
    ]


def test_an_unwritable_log_file_is_one_line(shared_dir: Path) -> None:
    log = shared_dir / "cryptoj.log"
    log.write_text("")
    log.chmod(0o444)
    run = _run_unprivileged(
        ("bench-book", str(shared_dir / "none.jsonl")),
        _writable_home(shared_dir),
        {"CRYPTOJ_LOG__FILE": str(log)},
    )
    lines = _error_lines(run)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run
    assert lines == [
        f"cryptoj: config key 'log.file' = '{log}': cannot write it (Permission denied); "
        "point it at a file you can write"
    ]

"""core is UI-free: importing any core module must not pull in textual, rich or the UI packages.

The modules are imported in a fresh interpreter, because in this process the UI tests may already
have imported textual. The probe records the import statements core's own modules run, not what
ends up in ``sys.modules``: httpx imports rich for its command line when click is installed
(import-linter brings click), and that is httpx's import, not core's. The static rules
(which package may import which) are import-linter contracts in pyproject.toml.
"""

from __future__ import annotations

import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import core

FORBIDDEN = ("textual", "rich", "widgets", "cryptoj_tui")
CORE_DIR = Path(core.__file__).parent


def _core_modules() -> list[str]:
    names = ["core"]
    for info in pkgutil.walk_packages([str(CORE_DIR)], prefix="core."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


def test_there_are_modules_to_check() -> None:
    modules = _core_modules()
    assert "core.model" in modules and "core.config" in modules


def test_importing_every_core_module_pulls_in_no_ui() -> None:
    """One fresh interpreter imports all of core (a process per module cost minutes) with a hook
    on ``__import__`` that records every import statement a core module runs: a core module
    naming a UI package fails even when a third-party library loaded that package first."""
    modules = _core_modules()
    probe = (
        "import builtins, importlib\n"
        "seen = set()\n"
        "original = builtins.__import__\n"
        "def spy(name, globals=None, locals=None, fromlist=(), level=0):\n"
        "    importer = (globals or {}).get('__name__', '')\n"
        "    if level == 0 and importer.split('.')[0] == 'core':\n"
        f"        if name.split('.')[0] in {FORBIDDEN!r}: seen.add(importer + ' -> ' + name)\n"
        "    return original(name, globals, locals, fromlist, level)\n"
        "builtins.__import__ = spy\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(','.join(sorted(seen)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"core imports UI modules: {result.stdout.strip()}"


# ---------------------------------------------------------------- import-linter contracts

REPO_ROOT = CORE_DIR.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _copy_of_the_project(target: Path) -> Path:
    """The three packages and pyproject.toml's contracts, in a scratch directory."""
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("core", "widgets", "cryptoj_tui"):
        shutil.copytree(REPO_ROOT / package, target / package, ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_dependency_contracts_hold() -> None:
    result = _lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "violation", "contract"),
    [
        ("core/denials.py", "from core.sim import products", "does not import the simulated"),
        ("core/denials.py", "import rich", "core is UI-free"),
        ("core/sim/matching.py", "from core.coinbase import errors", "independent counterparty"),
        ("core/risk.py", "from core.coinbase import errors", "stay behind the Coinbase venue"),
        ("core/clock.py", "from core import engine", "No import cycles"),
        ("widgets/__init__.py", "import cryptoj_tui", "The UI sits on the engine"),
    ],
)
def test_each_contract_catches_the_import_it_forbids(
    tmp_path: Path, module: str, violation: str, contract: str
) -> None:
    root = _copy_of_the_project(tmp_path)
    with (root / module).open("a") as source:
        source.write(f"\n{violation}  # noqa\n")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert contract in _broken_contracts(result.stdout), result.stdout


def _broken_contracts(report: str) -> str:
    """The names of the contracts lint-imports reports BROKEN, joined (names wrap lines)."""
    listing = " ".join(report.split()).split("dependencies.", 1)[1].split("Contracts:", 1)[0]
    verdicts = re.findall(r"-*\s*(.*?)\s(KEPT|BROKEN)(?:\s\(\d+ ignored imports\))?", listing)
    return " | ".join(name for name, verdict in verdicts if verdict == "BROKEN")

"""core is UI-free: importing any core module must not pull in textual, rich or the UI packages.

Each module is imported in a fresh interpreter, because in this process the UI tests may already
have imported textual.
"""

from __future__ import annotations

import pkgutil
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


@pytest.mark.parametrize("module", _core_modules())
def test_core_module_imports_no_ui(module: str) -> None:
    probe = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imported UI modules: {result.stdout.strip()}"

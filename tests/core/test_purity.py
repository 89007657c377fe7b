"""The pure core stays pure: no module of `bot/core` (nor the pure rooms of a capability) imports Slack,
httpx, SQLite, the scheduler or any part of the bot outside the core."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[2] / "bot"
PURE = sorted((BOT / "core").glob("*.py")) + [BOT / "restores" / f"{name}.py" for name in ("plan", "views", "command")]
ADAPTERS = {"slack_sdk", "slack_bolt", "httpx", "sqlite3", "sqlite_utils", "apscheduler", "waitress", "tenacity",
            "prometheus_client", "click"}


def modules_imported(path: Path) -> set[str]:
    """Every module a file imports, by its full name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", PURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_pure_module_imports_no_adapter_and_nothing_of_the_bot_outside_the_core(path: Path) -> None:
    imported = modules_imported(path)
    assert not {name.split(".")[0] for name in imported} & ADAPTERS
    own = {name for name in imported if name == "bot" or name.startswith("bot.")}
    allowed = ("bot.core", "bot.restores.plan") if path.parent.name == "restores" else ("bot.core",)
    assert all(name.startswith(allowed) for name in own), own


def test_the_core_holds_the_modules_the_readme_calls_pure() -> None:
    readme = (BOT.parent / "README.md").read_text(encoding="utf-8")
    listed = readme[readme.index("  core/"):readme.index("  restores/")]
    named = {name for name in re.findall(r"(\w+\.py)", listed) if not name.startswith("test_")}
    assert {p.name for p in (BOT / "core").glob("*.py")} - {"__init__.py"} == named

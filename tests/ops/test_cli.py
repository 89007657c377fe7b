"""The command line lists every command of the outside contract (design brief, section 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bot.__main__ import cli

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_COMMANDS = {"run", "sandbox", "check", "cc-auth", "audit"}  # `demo` lands with the execution feature


def listed_commands(help_text: str) -> set[str]:
    section = help_text.split("Commands:", 1)[1]
    return {line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.split()}


def test_help_lists_every_contract_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert listed_commands(result.output) >= CONTRACT_COMMANDS
    assert set(cli.commands) >= CONTRACT_COMMANDS


def test_every_command_has_help() -> None:
    for name in CONTRACT_COMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert cli.commands[name].help, name


def test_the_ops_commands_take_the_documented_options() -> None:
    options = {name: {o for p in cli.commands[name].params for o in p.opts} for name in ("check", "cc-auth", "audit")}
    assert options["check"] >= {"--socket"}
    assert options["cc-auth"] >= {"--code", "--redirect-uri"}
    assert options["audit"] >= {"--request", "--actor", "--since", "--until", "--csv"}


def test_python_dash_m_bot_is_the_same_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "bot", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 0, done.stderr
    assert listed_commands(done.stdout) >= CONTRACT_COMMANDS

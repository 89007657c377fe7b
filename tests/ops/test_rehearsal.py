"""The README's rehearsal: `deletetags-bot sandbox --slack`, paste what it prints, `deletetags-bot check` passes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.e2e.botproc import free_port


def free_port_pair() -> int:
    """A port P with P + 1 free as well (the Slack emulator takes the next port)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no two consecutive free ports")


def test_check_passes_against_the_sandbox_printed_settings(tmp_path: Path) -> None:
    port = free_port_pair()
    sandbox = subprocess.Popen([sys.executable, "-m", "bot", "sandbox", "--slack", "--port", str(port), "--tags", "5"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        settings: dict[str, str] = {}
        for line in sandbox.stdout:  # type: ignore[union-attr]
            match = re.match(r"^([A-Z_]+)=(\S+)$", line.strip())
            if match:
                settings[match.group(1)] = match.group(2)
            if "Ctrl+C" in line and "SLACK_API_URL" in settings:
                break
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CC_"))}
        env.update(settings, DELETETAGS_DB=str(tmp_path / "rehearsal.db"))
        check = subprocess.run([sys.executable, "-m", "bot", "check"], env=env, capture_output=True, text=True,
                               timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "✗" not in check.stdout and "✓" in check.stdout
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(timeout=10)

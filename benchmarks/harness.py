"""Shared pieces of the benchmarks: result rows, statistics, the machine, child processes, waiting."""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the results table. `met` is None for figures that have no target."""

    benchmark: str
    metric: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None


@dataclass
class Outcome:
    """What one benchmark produced: its table rows, free-form notes, and how long it took."""

    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


# --- statistics ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on the sorted values; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 else math.inf


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


def times(value: float) -> str:
    return f"{value:.2f}x"


# --- the machine -----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    free = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load": load_average(),
        "free -h": free,
    }


def load_average() -> str:
    """Other work on the machine skews every figure here; the results record how busy it was."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


# --- waiting ---------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --- what the bot logged ----------------------------------------------------------------------------

LOG_SIGNS = {
    "poll jobs skipped by APScheduler": "skipped: maximum number of running instances",
    "thread posts refused by Slack": "thread post failed",
    "DMs refused by Slack": "could not message a user",
    "card edits refused by Slack": "could not update the card",
}


def log_findings(text: str) -> dict[str, int]:
    """How often the bot logged each of the signs of trouble above."""
    return {label: text.count(sign) for label, sign in LOG_SIGNS.items()}


def log_rows(benchmark: str, label: str, text: str) -> list[Row]:
    found = log_findings(text)
    skipped = found.pop("poll jobs skipped by APScheduler")
    rows = [Row(benchmark, f"{label}: poll jobs skipped by APScheduler (polling stops until the watchdog)",
                str(skipped), target="0", met=skipped == 0)]
    refused = ", ".join(f"{name} {count}" for name, count in found.items() if count) or "none"
    rows.append(Row(benchmark, f"{label}: Slack refusals the bot logged", refused))
    return rows


# --- child processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc/<pid>/status VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class ServerProcess:
    """A Python module run as a child process serving HTTP on 127.0.0.1, healthy once /healthz says ok."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        port = free_port()
        self.args = [sys.executable, *args]
        self.env = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port), "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": str(REPO_ROOT)}
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> ServerProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=REPO_ROOT)
        wait_until(self._healthy, timeout=timeout, what=f"{self.args[-1]} to become healthy", interval=0.1)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.args} exited with {self.process.returncode}; see {self.log_path}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                return json.loads(response.read()).get("status") == "ok"
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: for a benchmark that is done with the process and need not wait for its shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def bot_process(env: Mapping[str, str], log_path: Path) -> ServerProcess:
    """`deletetags-bot run` (as `python -m bot run`), exactly as the Procfile's web process."""
    return ServerProcess(["-m", "bot", "run"], env, log_path)


def baseline_process(env: Mapping[str, str], log_path: Path) -> ServerProcess:
    """The ack-only Bolt app of benchmarks/baseline_app.py."""
    return ServerProcess(["-m", "benchmarks.baseline_app"], env, log_path)

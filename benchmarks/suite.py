"""Runs the benchmarks in order, keeps going when one fails, and writes the results."""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import (bench_ack, bench_junk, bench_memory, bench_parse, bench_polling, bench_quota, bench_slack,
                        bench_snapshot, report)
from benchmarks.harness import Outcome, load_average, machine

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Plan:
    ack: bench_ack.AckSizes
    parse: bench_parse.ParseSizes
    polling: bench_polling.PollingSizes
    quota: bench_quota.QuotaSizes
    slack: bench_slack.SlackSizes
    memory: bench_memory.MemorySizes
    junk: bench_junk.JunkSizes
    snapshot: bench_snapshot.SnapshotSizes


FULL = Plan(bench_ack.AckSizes(), bench_parse.ParseSizes(), bench_polling.PollingSizes(), bench_quota.QuotaSizes(),
            bench_slack.SlackSizes(), bench_memory.MemorySizes(), bench_junk.JunkSizes(),
            bench_snapshot.SnapshotSizes())
QUICK = Plan(bench_ack.QUICK, bench_parse.QUICK, bench_polling.QUICK, bench_quota.QUICK, bench_slack.QUICK,
             bench_memory.QUICK, bench_junk.QUICK, bench_snapshot.QUICK)


def benchmarks(plan: Plan) -> dict[str, Callable[[Path], Outcome]]:
    return {
        "ack": lambda d: bench_ack.run(d, plan.ack),
        "parse": lambda d: bench_parse.run(plan.parse),
        "polling": lambda d: bench_polling.run(d, plan.polling),
        "quota": lambda d: bench_quota.run(d, plan.quota),
        "slack": lambda d: bench_slack.run(d, plan.slack),
        "memory": lambda d: bench_memory.run(d, plan.memory),
        "junk": lambda d: bench_junk.run(plan.junk),
        "snapshot": lambda d: bench_snapshot.run(d, plan.snapshot),
    }


def run_one(name: str, benchmark: Callable[[Path], Outcome], work_dir: Path) -> Outcome:
    directory = work_dir / name
    directory.mkdir(parents=True, exist_ok=True)
    print(f"--- {name} ...", flush=True)
    started = time.monotonic()
    try:
        outcome = benchmark(directory)
    except Exception as error:  # noqa: BLE001 - one broken benchmark must not hide the others
        traceback.print_exc()
        outcome = Outcome(name, error=f"{type(error).__name__}: {error}"[:300])
    outcome.seconds = time.monotonic() - started
    print(f"--- {name} done in {outcome.seconds:.0f} s", flush=True)
    return outcome


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes, a smoke run of a few minutes")
    parser.add_argument("--only", nargs="+", choices=list(benchmarks(QUICK)), help="run only these benchmarks")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, databases)")
    parser.add_argument("--output", type=Path, default=HERE / "results.md", help="where to write the results")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    plan = QUICK if args.quick else FULL
    chosen = {name: run for name, run in benchmarks(plan).items() if not args.only or name in args.only}
    work_dir = Path(tempfile.mkdtemp(prefix="deletetags-bench-"))
    started, host = time.monotonic(), machine()
    try:
        outcomes = [run_one(name, benchmark, work_dir) for name, benchmark in chosen.items()]
    finally:
        if args.keep:
            print(f"working directory kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    mode = ("quick" if args.quick else "full") + (f", only {', '.join(args.only)}" if args.only else "")
    host["load at the end"] = load_average()
    results = report.render(outcomes, host, mode, time.monotonic() - started)
    args.output.write_text(results)
    if not args.quick and not args.only:
        report.update_readme(HERE / "README.md", results)
    print()
    print(report.text_table(outcomes))
    print(f"\n{report.summary_line(outcomes)} Written to {args.output}.")
    return 1 if any(o.error for o in outcomes) else 0

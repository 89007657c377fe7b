"""The results as Markdown (benchmarks/results.md, and the README's latest-results block) and as text."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.harness import Outcome, Row

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"
HEADERS = ("Benchmark", "Metric", "Value", "Baseline", "Ratio", "Target", "Met")


def verdict(row: Row) -> str:
    return "" if row.met is None else ("yes" if row.met else "**NO**")


def cells(row: Row) -> tuple[str, ...]:
    return (row.benchmark, row.metric, row.value, row.baseline, row.ratio, row.target, verdict(row))


def markdown_table(outcomes: Sequence[Outcome]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for outcome in outcomes:
        if outcome.error:
            lines.append(f"| {outcome.name} | did not finish | {escape(outcome.error)} | | | | **NO** |")
        lines += ["| " + " | ".join(escape(c) for c in cells(row)) + " |" for row in outcome.rows]
    return "\n".join(lines)


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def machine_block(machine: Mapping[str, str]) -> str:
    free = "\n".join(f"    {line}" for line in machine["free -h"].splitlines())
    return (f"- date: {machine['date']}\n- `nproc`: {machine['nproc']}\n- python: {machine['python']}\n"
            f"- platform: {machine['platform']}\n- load average (1/5/15 min) at the start: {machine['load']}, "
            f"at the end: {machine.get('load at the end', '?')}\n- `free -h`:\n\n{free}\n")


def summary_line(outcomes: Sequence[Outcome]) -> str:
    rows = [row for outcome in outcomes for row in outcome.rows if row.met is not None]
    met = sum(1 for row in rows if row.met)
    failed = [o.name for o in outcomes if o.error]
    tail = f"; did not finish: {', '.join(failed)}" if failed else ""
    return f"{met} of {len(rows)} targets met{tail}."


def render(outcomes: Sequence[Outcome], machine: Mapping[str, str], mode: str, seconds: float) -> str:
    notes = [f"- **{o.name}** ({o.seconds:.0f} s): " + " ".join(o.notes) for o in outcomes]
    return (
        f"# Benchmark results ({mode})\n\n"
        f"Written by `benchmarks/run.py`; the whole run took {seconds / 60:.1f} min. {summary_line(outcomes)}\n\n"
        f"## Machine\n\n{machine_block(machine)}\n"
        f"## Results\n\n{markdown_table(outcomes)}\n\n"
        f"## Notes\n\n" + "\n".join(notes) + "\n"
    )


def update_readme(readme: Path, results: str) -> bool:
    """Replace the block between the README's results markers; False when the markers are missing."""
    if not readme.exists():
        return False
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        return False
    body = results.split("\n", 2)[2]  # drop the "# Benchmark results" title
    body = re.sub(r"^## ", "### ", body, flags=re.MULTILINE)  # nested under the README's own heading
    readme.write_text(pattern.sub(lambda _: f"{README_START}\n{body.strip()}\n{README_END}", text))
    return True


def text_table(outcomes: Sequence[Outcome]) -> str:
    rows = [HEADERS] + [cells(row) for outcome in outcomes for row in outcome.rows]
    rows += [(o.name, "did not finish", o.error or "", "", "", "", "NO") for o in outcomes if o.error]
    limits = (12, 64, 44, 10, 7, 22, 6)
    widths = [min(limit, max(len(r[i]) for r in rows)) for i, limit in enumerate(limits)]
    return "\n".join("  ".join(cell[:width].ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)

"""7. Junk files: peak memory and time of `bot.core.tags.parse_file` on 5 MB of junk, and of a 10-file message.

Everything runs with the bot's own limits (5 MB per file, 5,000 entries, 3 files per message) and
is compared with the parse baseline measured in the same run: the 5 MB headerless list of valid ids
from benchmark 2. A message is what `bot.listeners.events.handle_upload` does with its files once
downloaded: `plan_upload`, then `parse_file` and `combine` for each file it reads.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from bot.core import tags
from bot.listeners.events import plan_upload

from benchmarks.bench_parse import plain_ids
from benchmarks.harness import Outcome, Row, ratio, secs, times

MAX_FILES_PER_MESSAGE = 3
MEMORY_TARGET = 5.0


@dataclass(frozen=True)
class JunkSizes:
    file_bytes: int = 5_000_000
    files_per_message: int = 10


QUICK = JunkSizes(file_bytes=1_000_000, files_per_message=10)


@dataclass(frozen=True)
class Measured:
    peak_bytes: int
    seconds: float
    outcome: str


def repeated(line: bytes, size: int, head: bytes = b"") -> bytes:
    return head + line * ((size - len(head)) // len(line))


def junk_files(size: int) -> dict[str, bytes]:
    """The junk shapes that cost most per byte: many short lines, or many junk words per line."""
    valid_id = b"0b9c1e2a-5f3d-4c1b-9a7e-1234567890ab\n"
    return {
        "two-letter lines, no header": repeated(b"xy\n", size),
        "one id, then two-letter lines": repeated(b"xy\n", size, head=valid_id),
        "formulas under a name header": repeated(b"=1\n", size, head=b"name\n"),
        "mistyped ids, 10 a line": repeated(b"0000000g " * 10 + b"\n", size),
    }


def parse(data: bytes, filename: str = "junk.csv") -> str:
    try:
        selection = tags.parse_file(data, filename=filename)
    except tags.InputError as error:
        return error.message.split(".", 1)[0]
    return f"{selection.entry_count:,} entries, {selection.junk_count:,} junk ({len(selection.junk)} kept)"


def message(files: list[dict[str, Any]], contents: dict[str, bytes]) -> str:
    plan = plan_upload(files, MAX_FILES_PER_MESSAGE, tags.MAX_FILE_BYTES)
    selection = tags.Selection()
    for file in plan.to_read:
        try:
            parsed = tags.parse_file(contents[file["id"]], filename=file["name"])
        except tags.InputError as error:
            return f"read {len(plan.to_read)}, skipped {len(files) - len(plan.to_read)}: {error.message.split('.')[0]}"
        selection = tags.combine(selection, parsed)
    return f"read {len(plan.to_read)}, skipped {len(files) - len(plan.to_read)}; {selection.junk_count:,} junk"


def measure(work: Callable[[], str]) -> Measured:
    """Peak bytes allocated (tracemalloc) and CPU time of one run; the input itself is allocated before."""
    gc.collect()
    tracemalloc.start()
    started = time.process_time()
    try:
        outcome = work()
        return Measured(tracemalloc.get_traced_memory()[1], time.process_time() - started, outcome)
    finally:
        tracemalloc.stop()


def row(label: str, mine: Measured, base: Measured, target: bool = False) -> list[Row]:
    memory = ratio(mine.peak_bytes, base.peak_bytes)
    return [
        Row("junk", f"{label}: peak memory", f"{mine.peak_bytes / 1e6:.1f} MB", f"{base.peak_bytes / 1e6:.1f} MB",
            times(memory), f"<= {MEMORY_TARGET:g}x baseline" if target else "",
            memory <= MEMORY_TARGET if target else None),
        Row("junk", f"{label}: CPU time", secs(mine.seconds), secs(base.seconds),
            times(ratio(mine.seconds, base.seconds))),
    ]


def run(sizes: JunkSizes) -> Outcome:
    outcome = Outcome("junk")
    ids = plain_ids(sizes.file_bytes)
    base = measure(lambda: parse(ids, "ids.txt"))
    outcome.notes.append(f"baseline, {len(ids) / 1e6:.1f} MB of valid ids: {base.outcome}.")
    worst: tuple[str, Measured] | None = None
    for name, data in junk_files(sizes.file_bytes).items():
        measured = measure(partial(parse, data))
        outcome.rows += row(f"{name} ({len(data) / 1e6:.1f} MB)", measured, base)
        outcome.notes.append(f"{name}: {measured.outcome}.")
        if worst is None or measured.peak_bytes > worst[1].peak_bytes:
            worst = (name, measured)
    assert worst is not None
    outcome.rows += row(f"worst junk file ({worst[0]})", worst[1], base, target=True)
    data = junk_files(sizes.file_bytes)[worst[0]]
    files = [{"id": f"F{i}", "name": f"junk{i}.csv", "size": len(data)} for i in range(sizes.files_per_message)]
    contents = {file["id"]: data for file in files}
    sent = measure(lambda: message(files, contents))
    outcome.rows += row(f"a message of {len(files)} such files", sent, base, target=True)
    outcome.notes.append(f"{len(files)}-file message: {sent.outcome}.")
    return outcome

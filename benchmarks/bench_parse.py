"""2. Parsing: `bot.core.tags.parse_file` on big files against stdlib `csv.reader` + `uuid.UUID` per cell."""

from __future__ import annotations

import codecs
import csv
import gc
import random
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from bot.core import tags

from benchmarks.harness import Outcome, Row, median, ratio, secs, times

TARGET_RATIO = 1.5
NO_LIMIT = 10**9


@dataclass(frozen=True)
class ParseSizes:
    mixed_lines: int = 100_000
    plain_bytes: int = 5_000_000
    repeats: int = 3


QUICK = ParseSizes(mixed_lines=20_000, plain_bytes=1_000_000, repeats=2)


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    filename: str


def mixed_csv(lines: int, seed: int = 7) -> bytes:
    """A BOM, a header, then ids (any case, some braced), quoted names with commas and quotes, junk, comments."""
    rng = random.Random(seed)
    rows = ["tag_id,name"]
    for index in range(lines - 1):
        roll = rng.random()
        tag_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if roll < 0.60:
            rows.append(f"{tag_id},Spring Promo {index}")
        elif roll < 0.68:
            rows.append(f"{{{tag_id.upper()}}},\"Webinar, \"\"Q{index % 4 + 1}\"\" follow-up\"")
        elif roll < 0.80:
            rows.append(f",\"Newsletter, list {index}\"")
        elif roll < 0.86:
            rows.append(f"{tag_id[:-3]},Broken id {index}")
        elif roll < 0.90:
            rows.append(f"=HYPERLINK(\"http://x\"),Formula {index}")
        elif roll < 0.94:
            rows.append(f"# comment {index}")
        elif roll < 0.97:
            rows.append("")
        else:
            rows.append(f"{tag_id},Name,extra cell {index}")
    return codecs.BOM_UTF8 + ("\r\n".join(rows) + "\r\n").encode("utf-8")


def plain_ids(size: int, seed: int = 11) -> bytes:
    """Headerless, one lowercase id per line, up to `size` bytes (the default upload limit is 5 MB)."""
    rng = random.Random(seed)
    line_bytes = 37
    count = size // line_bytes
    return "".join(f"{uuid.UUID(int=rng.getrandbits(128), version=4)}\n" for _ in range(count)).encode()


def stdlib_baseline(data: bytes, filename: str) -> set[str]:
    """What a plain script would do: decode, csv.reader, and every cell that uuid.UUID accepts is an id."""
    found: set[str] = set()
    for row in csv.reader(data.decode("utf-8-sig").splitlines()):
        for cell in row:
            try:
                found.add(str(uuid.UUID(cell.strip())))
            except ValueError:
                continue
    return found


def product(data: bytes, filename: str) -> tags.Selection:
    return tags.parse_file(data, filename=filename, max_bytes=NO_LIMIT, max_entries=NO_LIMIT)


def best_time(parse: Callable[[bytes, str], object], sample: Sample, repeats: int) -> float:
    """The median of `repeats` runs, each after a collection so garbage from the last does not count."""
    runs = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        parse(sample.data, sample.filename)
        runs.append(time.perf_counter() - started)
    return median(runs)


def peak_memory(parse: Callable[[bytes, str], object], sample: Sample) -> float:
    """Peak bytes allocated during one run (tracemalloc), the input itself excluded."""
    gc.collect()
    tracemalloc.start()
    try:
        parse(sample.data, sample.filename)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def compare(sample: Sample, repeats: int) -> list[Row]:
    mine, base = best_time(product, sample, repeats), best_time(stdlib_baseline, sample, repeats)
    mine_peak, base_peak = peak_memory(product, sample), peak_memory(stdlib_baseline, sample)
    size = f"{sample.name} ({len(sample.data) / 1e6:.1f} MB)"
    return [
        Row("parsing", f"{size}: time", secs(mine), secs(base), times(ratio(mine, base)),
            f"<= {TARGET_RATIO}x baseline", ratio(mine, base) <= TARGET_RATIO),
        Row("parsing", f"{size}: peak memory", f"{mine_peak / 1e6:.1f} MB", f"{base_peak / 1e6:.1f} MB",
            times(ratio(mine_peak, base_peak))),
    ]


def run(sizes: ParseSizes) -> Outcome:
    outcome = Outcome("parsing")
    samples = [
        Sample(f"{sizes.mixed_lines:,}-line mixed CSV with BOM", mixed_csv(sizes.mixed_lines), "tags.csv"),
        Sample("headerless id list", plain_ids(sizes.plain_bytes), "ids.txt"),
    ]
    for sample in samples:
        outcome.rows += compare(sample, sizes.repeats)
        selection = product(sample.data, sample.filename)
        outcome.notes.append(f"{sample.name}: parse_file found {len(selection.ids):,} ids, {len(selection.names):,} "
                             f"names, {selection.junk_count:,} junk lines, {selection.duplicates:,} duplicates; "
                             f"the baseline found {len(stdlib_baseline(sample.data, sample.filename)):,} ids.")
    return outcome

"""The performance suite: `.venv/bin/python benchmarks/run.py [--quick] [--only NAME ...] [--keep]`.

Writes benchmarks/results.md and prints the table; a full run also refreshes the latest-results
block of benchmarks/README.md. See benchmarks/README.md for what each benchmark measures.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script: make the repository root importable so `benchmarks` is a package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.suite import main

    sys.exit(main(sys.argv[1:]))

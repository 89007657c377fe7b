"""The performance suite of deletetags-bot: `.venv/bin/python benchmarks/run.py [--quick]`."""

"""Operator tools behind `deletetags-bot check`, `cc-auth` and `audit`."""

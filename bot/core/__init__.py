"""The pure core: parsing, lifecycle rules, wording and Block Kit builders.

Nothing here imports Slack, httpx or SQLite (a test checks): these modules take plain values and
return plain values, so they are tested without any server, and every adapter shares one rule.
"""

"""A lean HTTP client in its own process: replays signed Slack requests and times each answer.

The Slack emulator lives in the benchmark's main process and is busy serving the bot's Web API
calls; timing from that process would charge the emulator's work (and its share of the GIL) to
the bot. This process does nothing but sign, send and read.

`python -m benchmarks.loadgen <requests.json> <results.json>` with SLACK_SIGNING_SECRET in the
environment; the requests file is {"url": ..., "workers": N, "requests": [{"body_b64", "content_type"}]}.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    elapsed: float


def signed_headers(secret: str, body: bytes, content_type: str) -> dict[str, str]:
    """Slack's v0 signature: HMAC-SHA256 over `v0:<timestamp>:<body>`."""
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def send(url: str, secret: str, body: bytes, content_type: str) -> Answer:
    """One request on a fresh connection, as Slack makes them; timed from connect to the last byte read."""
    parts = urlsplit(url)
    headers = signed_headers(secret, body, content_type)
    started = time.monotonic()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("POST", parts.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return Answer(response.status, time.monotonic() - started)
    except OSError:
        return Answer(0, time.monotonic() - started)
    finally:
        connection.close()


def replay(url: str, secret: str, requests: list[tuple[bytes, str]], workers: int) -> list[Answer]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda request: send(url, secret, *request), requests))


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    requests = [(base64.b64decode(r["body_b64"]), r["content_type"]) for r in spec["requests"]]
    answers = replay(spec["url"], os.environ["SLACK_SIGNING_SECRET"], requests, int(spec["workers"]))
    Path(argv[1]).write_text(json.dumps([asdict(a) for a in answers]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

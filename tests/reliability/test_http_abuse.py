"""Clients that are not Slack, against the real waitress server on loopback: oversized bodies are
refused from their headers, and slow clients lose their connection before they can lock Slack out.

Reproduced before the fix: four unsigned 300 MB POSTs took the process from 44 MB to 1,070 MB (each
body read whole before its signature was checked), and 205 sockets sending a byte every 9 s held
every one of waitress's 200 connections, so no signed command was answered at all.
"""

from __future__ import annotations

import http.client
import selectors
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import closing

import pytest

from bot.sandbox.slack import DriverResponse, SlackDriver
from bot.sandbox.world import SIGNING_SECRET, World
from bot.server import MAX_BODY_BYTES, HttpServer, RequestDeadlines

ACK_DEADLINE = 3.0  # Slack's
SLOW_CLIENTS = 205  # as reproduced: more than waitress's former connection limit of 200
HEAD = (b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n")
SHORT = RequestDeadlines(head_seconds=0.5, body_seconds=0.5, sweep_seconds=0.1)


class SlowClients:
    """Connections that each send a request one byte at a time, `every` seconds apart."""

    def __init__(self, address: tuple[str, int], count: int, every: float, first: bytes = b"P") -> None:
        self.sockets = [socket.create_connection(address, timeout=5) for _ in range(count)]
        self.open = set(self.sockets)
        self.every = every
        self.selector = selectors.DefaultSelector()
        for sock in self.sockets:
            sock.sendall(first)
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._dribble, name="slow-clients", daemon=True)
        self.thread.start()

    def _dribble(self) -> None:
        while not self.stopped.wait(self.every) and self.open:
            for sock in list(self.open):
                try:
                    sock.send(b"O")
                except OSError:
                    self.open.discard(sock)
            self._notice_closed()

    def _notice_closed(self) -> None:
        for key, _ in self.selector.select(timeout=0):
            try:
                ended = key.fileobj.recv(1) == b""  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                ended = False
            except OSError:
                ended = True
            if ended:
                self.open.discard(key.fileobj)  # type: ignore[arg-type]
                self.selector.unregister(key.fileobj)

    @property
    def closed_by_server(self) -> int:
        return len(self.sockets) - len(self.open)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.selector.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def guarded(world: World) -> Iterator[HttpServer]:
    """The bot's app on a second server with 200 connections and deadlines short enough for a test."""
    services = world.bot.services
    server = HttpServer(world.bot.app, services.health, "127.0.0.1", 0, signing_secret=SIGNING_SECRET,
                        gate=services.ack_gate, deadlines=SHORT, connection_limit=200).start_in_thread()
    yield server
    server.stop()


def address(server: HttpServer) -> tuple[str, int]:
    return ("127.0.0.1", server.port)


def answer_to(sock: socket.socket, timeout: float = ACK_DEADLINE) -> str:
    """The status code the server answered, "closed" if it closed the connection, "" if it is still waiting."""
    sock.settimeout(timeout)
    try:
        first = sock.recv(64)
    except TimeoutError:
        return ""
    except OSError:
        return "closed"
    return first.split(b" ", 2)[1].decode() if first.startswith(b"HTTP/") else "closed"


def help_command(world: World, server: HttpServer) -> DriverResponse:
    driver = SlackDriver(world.slack, f"{server.url}/slack/events", SIGNING_SECRET)
    driver.http_timeout = 10.0
    return driver.slash_command(world.people.requester, world.channel, "help")


def assert_answered_in_time(response: DriverResponse) -> None:
    assert response.status == 200 and "/deletetags" in response.body
    assert response.elapsed < ACK_DEADLINE, f"the help command was answered after {response.elapsed:.2f} s"


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# --- bodies -------------------------------------------------------------------------------------

@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed-looking"])
def test_a_body_declared_over_the_cap_is_refused_from_its_headers(world: World, signed: bool) -> None:
    stamp = str(int(time.time()))
    headers = f"X-Slack-Request-Timestamp: {stamp}\r\nX-Slack-Signature: v0={'0' * 64}\r\n" if signed else ""
    with closing(socket.create_connection(address(world.bot.http), timeout=5)) as sock:
        # The head alone: waitress must answer without waiting for a byte of the 300 MB it announces.
        sock.sendall(HEAD + headers.encode() + b"Content-Length: 300000000\r\n\r\n")
        assert answer_to(sock) == "413"


def test_a_chunked_body_is_cut_off_once_it_passes_the_cap(world: World) -> None:
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"  # 64 KiB; the body never ends (no last chunk)
    with closing(socket.create_connection(address(world.bot.http), timeout=5)) as sock:
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(MAX_BODY_BYTES // 0x10000 + 8):
                sock.sendall(chunk)
        except OSError:
            pass  # refused while still sending
        assert answer_to(sock) in ("413", "closed")


def test_four_large_unsigned_posts_do_not_grow_memory(world: World) -> None:
    body = b"x" * (24 * 1024 * 1024)
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(4):
            with closing(socket.create_connection(address(world.bot.http), timeout=5)) as sock:
                try:
                    sock.sendall(HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode())
                    sock.sendall(body)  # not joined to the head: a copy would count against the server
                except OSError:
                    pass  # refused before the whole body was sent
                assert answer_to(sock, timeout=10) in ("413", "401", "closed")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Before the fix each body was read whole (and copied) before its signature was checked.
    assert peak - baseline < 8 * 1024 * 1024, f"memory peaked {(peak - baseline) / 1e6:.0f} MB above where it was"


# --- slow clients -------------------------------------------------------------------------------

def test_205_slow_clients_do_not_lock_out_a_signed_command(world: World) -> None:
    slow = SlowClients(address(world.bot.http), SLOW_CLIENTS, every=0.5)
    try:
        assert_answered_in_time(help_command(world, world.bot.http))
    finally:
        slow.stop()


def test_slow_clients_holding_every_connection_are_closed_in_time_for_slack(world: World,
                                                                           guarded: HttpServer) -> None:
    slow = SlowClients(address(guarded), SLOW_CLIENTS, every=0.2)
    try:
        wait_until(lambda: guarded.server.in_connection_overflow, 5, "every connection to be taken")
        assert_answered_in_time(help_command(world, guarded))
        wait_until(lambda: slow.closed_by_server >= SLOW_CLIENTS, ACK_DEADLINE, "the slow clients to be closed")
    finally:
        slow.stop()


def healthz_status(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    response.read()
    return response.status


def test_a_slow_body_and_a_silent_connection_are_closed_and_an_idle_keep_alive_is_not(guarded: HttpServer) -> None:
    with closing(socket.create_connection(address(guarded), timeout=5)) as silent, \
            closing(http.client.HTTPConnection("127.0.0.1", guarded.port, timeout=5)) as kept_alive:
        assert healthz_status(kept_alive) == 200
        slow_body = SlowClients(address(guarded), 1, every=0.1, first=HEAD + b"Content-Length: 100\r\n\r\n")
        try:
            wait_until(lambda: slow_body.closed_by_server == 1, ACK_DEADLINE, "the slow body to be closed")
            assert answer_to(silent) == "closed"
            # Idle for longer than both deadlines, but between requests: waitress's channel_timeout applies.
            assert healthz_status(kept_alive) == 200
        finally:
            slow_body.stop()


@pytest.mark.slow
def test_with_the_production_deadlines_slow_clients_are_gone_within_the_head_deadline(world: World) -> None:
    services = world.bot.services
    server = HttpServer(world.bot.app, services.health, "127.0.0.1", 0, signing_secret=SIGNING_SECRET,
                        gate=services.ack_gate, connection_limit=200).start_in_thread()
    slow = SlowClients(address(server), SLOW_CLIENTS, every=2.0)
    try:
        wait_until(lambda: server.server.in_connection_overflow, 5, "every connection to be taken")
        limits = RequestDeadlines()
        wait_until(lambda: not server.server.in_connection_overflow, limits.head_seconds + limits.sweep_seconds + 5,
                   "the slow clients to be closed")
        assert_answered_in_time(help_command(world, server))
    finally:
        slow.stop()
        server.stop()


def test_an_idle_server_sleeps_between_turns(world: World) -> None:
    # waitress's asyncore_loop_timeout is an int: the 0.2 s given before became 0, a loop that never slept.
    assert world.bot.http.server.adj.asyncore_loop_timeout == 1

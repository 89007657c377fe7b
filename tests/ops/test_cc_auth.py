"""`deletetags-bot cc-auth` against the Constant Contact simulator: device flow and PKCE, end to end."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner

from bot.__main__ import cli
from bot.cc_oauth import AuthorizationFailed
from bot.config import load_settings
from bot.constant_contact import ConstantContactClient
from bot.ops.cc_auth import Redirect, authorise, flows_for, parse_redirect, run_code_flow, run_device_flow
from bot.ops.check import check_cc_privileges, check_cc_tags, check_cc_token, check_database, check_settings, run_checks
from bot.runtime import StoreTokenStore
from bot.sandbox.constant_contact import ConstantContactSimulator
from bot.store import Store

ROOT = Path(__file__).resolve().parents[2]
REDIRECT_URI = "https://localhost/callback"
DEADLINE_SECONDS = 20


@pytest.fixture
def sim() -> Iterator[ConstantContactSimulator]:
    simulator = ConstantContactSimulator().start()
    simulator.device_interval_seconds = 1
    try:
        yield simulator
    finally:
        simulator.stop()



def env_for(sim: ConstantContactSimulator, db: Path, secret: bool = True) -> dict[str, str]:
    env = {"CC_CLIENT_ID": sim.client_id, "CC_AUTH_URL": sim.auth_url, "DELETETAGS_DB": str(db)}
    if secret:
        env["CC_CLIENT_SECRET"] = sim.client_secret
    return env


def follow_authorize(url: str) -> str:
    """What a browser would do: open the authorize URL and stop at the 302; return its Location."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    try:
        urllib.request.build_opener(NoRedirect).open(url, timeout=10)
    except urllib.error.HTTPError as answer:
        assert answer.code == 302
        return str(answer.headers["Location"])
    raise AssertionError("the authorize endpoint did not redirect")


def client_from_database(sim: ConstantContactSimulator, db: Path, store: Store) -> ConstantContactClient:
    return ConstantContactClient(api_url=sim.base_url, auth_url=sim.auth_url, client_id=sim.client_id,
                                 client_secret=sim.client_secret, token_store=StoreTokenStore(store))


def read_until(stream: IO[str], pattern: str, seen: list[str]) -> re.Match[str]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} in: {''.join(seen)}")


def cli_process(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bot", "cc-auth", *args], cwd=ROOT, text=True,
                            encoding="utf-8", env={**os.environ, **env, "PYTHONIOENCODING": "utf-8"},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[str], seen: list[str], answer: str = "") -> str:
    """Answer the prompt (if any) and read the rest of the output (through the same buffered stream)."""
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    if answer:
        process.stdin.write(answer)
    process.stdin.close()
    rest = process.stdout.read()
    errors = process.stderr.read()
    process.wait(timeout=DEADLINE_SECONDS)
    assert process.returncode == 0, "".join(seen) + rest + errors
    return "".join(seen) + rest


def test_device_flow_stores_tokens_that_the_bot_can_refresh(sim: ConstantContactSimulator, tmp_path: Path) -> None:
    sim.auto_approve_device_after = 1  # one "pending" answer first, then the person has approved
    tag_id = sim.add_tag("Spring Promo 2024", 12)
    db = tmp_path / "deletetags.db"
    result = CliRunner().invoke(cli, ["cc-auth"], env=env_for(sim, db))
    assert result.exit_code == 0, result.output
    assert f"{sim.origin}/activate" in result.output
    assert re.search(r"enter the code:\s+[A-Z]{8}", result.output)
    assert "?user_code=" in result.output
    assert result.output.strip().endswith(f"Connected. Tokens stored in {db}")

    store = Store(db)
    try:
        saved = store.load_credentials()
        assert saved is not None and saved.refresh_token and saved.access_token
        assert saved.refresh_token not in result.output and saved.access_token not in result.output
        # What check and the bot do next: refresh with the stored refresh token, then call the API.
        with client_from_database(sim, db, store) as client:
            client.refresh_now()
            assert [t.tag_id for t in client.list_tags()] == [tag_id]
        assert store.load_credentials().refresh_token != saved.refresh_token  # rotated and saved
    finally:
        store.close()
    results, _ = run_checks(dict(env_for(sim, db), CC_API_URL=sim.base_url),
                            checks=(check_settings, check_database, check_cc_token, check_cc_privileges, check_cc_tags))
    assert [r.ok for r in results[1:]] == [True] * 4, results


@pytest.mark.timeout(60)
def test_device_flow_as_a_process_waits_for_the_person(sim: ConstantContactSimulator, tmp_path: Path) -> None:
    db = tmp_path / "deletetags.db"
    process = cli_process(env_for(sim, db, secret=False))
    seen: list[str] = []
    try:
        assert process.stdout is not None
        link = read_until(process.stdout, r"\(or open (\S+) ", seen).group(1)
        read_until(process.stdout, "Waiting for the approval", seen)
        with urllib.request.urlopen(link, timeout=10) as page:  # the person opens the page: consent
            assert page.status == 200
        out = finish(process, seen)
    finally:
        process.kill()
    assert f"Connected. Tokens stored in {db}" in out
    store = Store(db)
    try:
        assert store.load_credentials() is not None
    finally:
        store.close()


def test_a_denied_device_flow_fails_and_stores_nothing(sim: ConstantContactSimulator, tmp_path: Path) -> None:
    db = tmp_path / "deletetags.db"
    store = Store(db)
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        code = re.search(r"enter the code:\s+(\S+)", line)
        if code:
            sim.deny_device(code.group(1))

    settings = load_settings(env_for(sim, db))
    try:
        with flows_for(settings, store) as flows, pytest.raises(AuthorizationFailed, match="denied"):
            run_device_flow(flows, echo)
        assert store.load_credentials() is None
    finally:
        store.close()


def test_code_flow_with_pkce(sim: ConstantContactSimulator, tmp_path: Path) -> None:
    db = tmp_path / "deletetags.db"
    store = Store(db)
    shown: list[str] = []

    def ask(question: str) -> str:
        url = next(line.strip() for line in shown if "/authorize?" in line)
        assert "code_challenge_method=S256" in url and "scope=contact_data+offline_access" in url
        return follow_authorize(url)

    try:
        with flows_for(load_settings(env_for(sim, db, secret=False)), store) as flows:
            run_code_flow(flows, REDIRECT_URI, shown.append, ask)
        assert store.load_credentials() is not None
        with client_from_database(sim, db, store) as client:
            client.refresh_now()
    finally:
        store.close()


def test_code_flow_refuses_a_redirect_with_another_state(sim: ConstantContactSimulator, tmp_path: Path) -> None:
    db = tmp_path / "deletetags.db"
    store = Store(db)
    shown: list[str] = []

    def forged(question: str) -> str:
        location = follow_authorize(next(line.strip() for line in shown if "/authorize?" in line))
        return re.sub(r"state=[^&]+", "state=forged", location)

    try:
        with flows_for(load_settings(env_for(sim, db)), store) as flows:
            with pytest.raises(AuthorizationFailed, match="state"):
                run_code_flow(flows, REDIRECT_URI, shown.append, forged)
        assert store.load_credentials() is None
    finally:
        store.close()


@pytest.mark.timeout(60)
def test_code_flow_as_a_process_takes_the_pasted_redirect(sim: ConstantContactSimulator, tmp_path: Path) -> None:
    db = tmp_path / "deletetags.db"
    process = cli_process(env_for(sim, db), "--code", "--redirect-uri", REDIRECT_URI)
    seen: list[str] = []
    try:
        assert process.stdout is not None
        url = read_until(process.stdout, r"^\s+(http\S+/authorize\?\S+)", seen).group(1)
        out = finish(process, seen, follow_authorize(url) + "\n")
    finally:
        process.kill()
    assert f"Connected. Tokens stored in {db}" in out
    assert "Paste the whole address" in out


def test_authorise_with_a_bare_code(sim: ConstantContactSimulator, tmp_path: Path) -> None:
    db = tmp_path / "deletetags.db"
    shown: list[str] = []

    def paste_code_only(question: str) -> str:
        location = follow_authorize(next(line.strip() for line in shown if "/authorize?" in line))
        return re.search(r"code=([^&]+)", location).group(1)

    path = authorise(load_settings(env_for(sim, db)), shown.append, paste_code_only, use_code=True,
                     redirect_uri=REDIRECT_URI)
    assert path == db
    store = Store(db)
    try:
        assert store.load_credentials() is not None
    finally:
        store.close()


def test_parse_redirect() -> None:
    assert parse_redirect(" abc123 ") == Redirect("abc123", None)
    assert parse_redirect("https://localhost/cb?code=xyz&state=s1") == Redirect("xyz", "s1")
    assert parse_redirect("https://localhost/cb?code=xyz") == Redirect("xyz", "")
    with pytest.raises(AuthorizationFailed, match="access_denied: no thanks"):
        parse_redirect("https://localhost/cb?error=access_denied&error_description=no+thanks&state=s")
    with pytest.raises(AuthorizationFailed, match="no `code`"):
        parse_redirect("https://localhost/cb?state=s")
    with pytest.raises(AuthorizationFailed, match="Nothing was pasted"):
        parse_redirect("   ")


def test_cc_auth_needs_a_client_id(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cc-auth"], env={"DELETETAGS_DB": str(tmp_path / "db"), "CC_CLIENT_ID": ""})
    assert result.exit_code == 2
    assert "CC_CLIENT_ID is missing" in result.output


def test_cc_auth_reports_an_unreachable_server(tmp_path: Path) -> None:
    env = {"CC_CLIENT_ID": "x", "CC_AUTH_URL": "http://127.0.0.1:9/oauth2/default/v1",
           "DELETETAGS_DB": str(tmp_path / "db")}
    result = CliRunner().invoke(cli, ["cc-auth"], env=env)
    assert result.exit_code == 1
    assert "Could not reach Constant Contact's authorisation server 127.0.0.1:9" in result.output

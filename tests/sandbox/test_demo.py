"""`deletetags-bot demo` tells the whole story and exits 0; the console takes typed lines."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox.demo import run_console, run_demo
from bot.sandbox.world import World


def test_demo_runs_the_whole_story(tmp_path: Path) -> None:
    lines: list[str] = []
    counts: list[tuple[int, int]] = []

    def count_calls(world: World) -> None:
        counts.append((world.bot.services.ledger.today().used, world.cc.quota_used_today()))

    assert run_demo(echo=lines.append, directory=tmp_path, before_stop=count_calls) == 0
    # The quota ledger agrees with Constant Contact's own count, to the call, over the whole story.
    (ledger, simulator), = counts
    assert ledger == simulator > 10
    output = "\n".join(lines)
    for step in ("/deletetags", "Request approval", "@otto clicked [ Approve ]", "Only the configured approvers",
                 "@alex clicked [ Approve ]", "@bea: status?", "ETA", "old-tags.csv",
                 "request #1 is finished", "request #2 is finished", "/deletetags restore 1",
                 "restore #3 (undoing request #1) is finished: *1 of 1 tags restored*, 57 contacts tagged again",
                 "#1 completed, #2 completed, restore #3 completed"):
        assert step in output, step
    assert output.count("is finished:") == 3
    assert output.count("Finished: every tag was deleted.") == 2  # both cards show the end
    assert output.count("Finished: every tag was restored.") == 1


def test_console_acts_as_different_people() -> None:
    script = iter(["help", "tags", "as otto", "/deletetags help", "as nobody", "quit"])
    lines: list[str] = []
    assert run_console(read=lambda prompt: next(script), echo=lines.append) == 0
    output = "\n".join(lines)
    assert "You are now @otto." in output and "Spring Promo 2024" in output
    assert "@otto: /deletetags help" in output

"""`deletetags-bot demo`: the whole story offline, and a console to play it yourself.

Everything runs on loopback: a temporary database, the Constant Contact simulator, the Slack
emulator, and the real bot in between, driven through signed requests like Slack sends.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.sandbox.slack import render_transcript
from bot.sandbox.world import NAMES, World, start_world

DEMO_ENV = {"POLL_MIN_SECONDS": "0.5", "POLL_MAX_SECONDS": "3", "APPROVAL_CHANNEL": "C0MKTOPS",
            "LOG_LEVEL": "WARNING", "RECONCILE_DELAY_SECONDS": "2"}
DEMO_TAGS = [("Spring Promo 2024", 1840), ("Old Webinar 2023", 312), ("Trade Show Leads", 96),
             ("Newsletter Test", 4), ("Black Friday 2022", 2210), ("Imported by mistake", 57),
             ("Holiday Card List", 640), ("VIP Early Access", 88)]
Echo = Callable[[str], None]


class DemoFailed(Exception):
    pass


def _seed(world: World) -> dict[str, str]:
    return {name: world.cc.add_tag(name, contacts) for name, contacts in DEMO_TAGS}


def _latest(world: World, predicate: Callable[[Any], bool], what: str) -> Any:
    def find() -> Any:
        candidates = [*world.slack.ephemerals, *world.slack.messages(world.channel)]
        for dm in {world.slack.open_dm(u) for u in NAMES}:
            candidates += world.slack.messages(dm)
        matching = [c for c in candidates if predicate(c)]
        return max(matching, key=lambda c: float(c.ts)) if matching else None

    return world.driver.wait_for(find, timeout=20, what=what)


def _has_button(text: str) -> Callable[[Any], bool]:
    return lambda item: f"'{text}'" in str(getattr(item, "blocks", ""))


def _request_by_text(world: World, tags: dict[str, str], echo: Echo) -> int:
    p = world.people
    echo("1. Rita asks to delete two tags by id and one by name, with a reason.")
    world.driver.slash_command(p.requester, world.channel,
                               f'{tags["Newsletter Test"]} {tags["Imported by mistake"]} "Old Webinar 2023" '
                               "reason: spring clean-up after the webinar series")
    preview = _latest(world, _has_button("Request approval"), "the preview")
    echo("2. She checks the preview (only she sees it) and asks for approval.")
    world.driver.click(p.requester, preview, "Request approval")
    card = _latest(world, _has_button("Approve"), "the request card")
    echo("3. Otto, who is not an approver, clicks Approve: refused, and recorded.")
    world.driver.click(p.outsider, card, "Approve")
    _latest(world, lambda e: getattr(e, "user", None) == p.outsider and "approvers" in e.text, "Otto's refusal")
    echo("4. Alex, an approver, approves. The deletion starts.")
    world.driver.click(p.approver, card, "Approve")
    request_id = int(card.text.split("#", 1)[1].split(" ", 1)[0])
    world.driver.wait_for(lambda: any(b.percent_done > 1 for b in world.store.batches(request_id)),
                          timeout=20, what="progress")
    echo("5. Bea asks in the thread how far it is.")
    world.driver.post_message(p.second_approver, world.channel, "status?", thread_ts=card.ts)
    world.driver.wait_for(lambda: any("ETA" in m.text for m in world.slack.thread(world.channel, card.ts)),
                          timeout=20, what="the status answer")
    return request_id


def _request_by_csv(world: World, tags: dict[str, str], echo: Echo) -> int:
    p = world.people
    echo("6. Rita drops a CSV in her DM with the bot; one line is junk, one name is unknown.")
    csv = (f"tag_id,name\n{tags['Black Friday 2022']},\n,Trade Show Leads\n,No Such Tag\nnot-an-id,\n").encode()
    world.driver.upload_file(p.requester, world.slack.bot_user_id, "old-tags.csv", csv,
                             text="reason: campaigns that ended last year")
    preview = _latest(world, _has_button("Request approval"), "the CSV preview")
    world.driver.click(p.requester, preview, "Request approval")
    card = _latest(world, lambda m: _has_button("Approve")(m) and getattr(m, "channel", "") == world.channel,
                   "the second card")
    echo("7. Grace, a member of the @team-leads group, approves it.")
    world.driver.click(p.group_approver, card, "Approve")
    return int(card.text.split("#", 1)[1].split(" ", 1)[0])


def _restore(world: World, deleted: int, echo: Echo) -> int:
    p = world.people
    echo(f"9. Rita learns that \"Imported by mistake\" was still in use, and undoes request #{deleted}: "
         "the tags come back from its snapshot.")
    world.driver.slash_command(p.requester, world.channel, f'restore {deleted} "Imported by mistake" '
                               "reason: still used by the onboarding journey")
    preview = _latest(world, lambda e: "Preview of restore" in e.text, "the restore preview")
    world.driver.click(p.requester, preview, "Request approval")
    card = _latest(world, lambda m: "Restore request #" in m.text, "the restore card")
    echo("10. Bea approves the restore (four eyes, as for a deletion).")
    world.driver.click(p.second_approver, card, "Approve")
    return int(card.text.split("Restore request #", 1)[1].split(" ", 1)[0])


def _wait_finished(world: World, request_id: int) -> str:
    terminal = ("completed", "completed_with_errors", "failed")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state in terminal
                          and world.store.notices(request_id).get("summary") == "posted",
                          timeout=40, what=f"request #{request_id} to finish")
    return world.store.get_request(request_id).state


def run_demo(echo: Echo = print, directory: Path | None = None,
             before_stop: Callable[[World], None] | None = None) -> int:
    """The scripted walkthrough; prints the transcript and returns the exit code. `before_stop` may look
    at the world once the story is told (tests compare the bot's records with the simulators')."""
    world = start_world(directory or Path(tempfile.mkdtemp(prefix="deletetags-demo-")),
                        env=DEMO_ENV, activity_seconds=4.0)
    try:
        tags = _seed(world)
        echo("deletetags-bot demo: everything below runs offline on 127.0.0.1.\n")
        first = _request_by_text(world, tags, echo)
        second = _request_by_csv(world, tags, echo)
        states = [_wait_finished(world, first), _wait_finished(world, second)]
        echo("8. Both finish; each thread ends with one summary that mentions Rita and how to undo it.")
        restore = _restore(world, first, echo)
        states.append(_wait_finished(world, restore))
        world.flush_slack()  # the cards' last edits
        echo("11. The tag is back under its name, on the same 57 contacts.\n")
        echo(render_transcript(world.slack, world.channel))
        echo("")
        echo(render_transcript(world.slack, world.slack.open_dm(world.people.requester)))
        echo(f"\nRequests: #{first} {states[0]}, #{second} {states[1]}, restore #{restore} {states[2]}. "
             f"Audit events recorded: {len(world.store.events())}.")
        if any(s != "completed" for s in states):
            raise DemoFailed(f"expected every request to complete, got {states}")
        if [t["contacts_count"] for t in world.cc.tags() if t["name"] == "Imported by mistake"] != [57]:
            raise DemoFailed("expected the restored tag on its 57 contacts")
        if before_stop is not None:
            before_stop(world)
        return 0
    finally:
        world.stop()


# --- the interactive console --------------------------------------------------------------------

CONSOLE_HELP = """Commands (you act as one person at a time):
  as <rita|alex|bea|grace|otto>   switch person (rita asks; alex, bea approve; grace is in @team-leads; otto is an outsider)
  /deletetags <text>              run the slash command in #marketing-ops
  click <button text>             click that button on the newest message or ephemeral that has it
  reason <text>                   fill in and submit the open modal's reason (reject / confirm)
  reply <text>                    post in the thread of the newest request card
  upload <path>                   drop a CSV/TXT file in your DM with the bot
  tags                            list the simulator's tags
  show                            print the transcript so far
  quit                            stop everything"""


class Console:
    def __init__(self, world: World, echo: Echo) -> None:
        self.world = world
        self.echo = echo
        self.user = world.people.requester
        self.by_name = {name: uid for uid, (name, _) in NAMES.items()}
        self.seen: set[str] = set()

    def handle(self, line: str) -> bool:
        """Run one console line; False means quit."""
        words = line.strip().split(" ", 1)
        verb, rest = words[0].lower(), (words[1] if len(words) > 1 else "")
        if verb in ("quit", "exit"):
            return False
        action = {"as": self._as, "/deletetags": self._command, "click": self._click, "reason": self._reason,
                  "reply": self._reply, "upload": self._upload, "tags": self._tags, "show": self._show,
                  "help": lambda _: self.echo(CONSOLE_HELP)}.get(verb)
        if action is None:
            self.echo(f"Unknown command {verb!r}. Type help.")
            return True
        try:
            action(rest)
        except (AssertionError, OSError, ValueError, KeyError) as error:
            self.echo(f"! {error}".splitlines()[0])
        return True

    def _as(self, name: str) -> None:
        self.user = self.by_name[name.strip().lower()]
        self.echo(f"You are now @{name.strip().lower()}.")

    def _command(self, text: str) -> None:
        self.world.driver.slash_command(self.user, self.world.channel, text)
        self._show_new()

    def _click(self, label: str) -> None:
        target = _latest(self.world, lambda item: f"'{label}'" in str(getattr(item, "blocks", ""))
                         and getattr(item, "user", self.user) in (self.user, self.world.slack.bot_user_id)
                         or (f"'{label}'" in str(getattr(item, "blocks", "")) and not hasattr(item, "via")),
                         f"a [{label}] button")
        self.world.driver.click(self.user, target, label)
        self._show_new()

    def _reason(self, text: str) -> None:
        view = next(v for v in reversed(list(self.world.slack.views.values()))
                    if v.user == self.user and not getattr(v, "closed", False))
        self.world.driver.submit_view(self.user, view, {"reason": {"reason": text}})
        self._show_new()

    def _reply(self, text: str) -> None:
        card = _latest(self.world, lambda m: "Deletion request #" in getattr(m, "text", "")
                       and getattr(m, "channel", "") == self.world.channel, "a request card")
        self.world.driver.post_message(self.user, self.world.channel, text, thread_ts=card.ts)
        self._show_new()

    def _upload(self, path: str) -> None:
        file = Path(shlex.split(path)[0]).expanduser()
        self.world.driver.upload_file(self.user, self.world.slack.bot_user_id, file.name, file.read_bytes())
        self._show_new()

    def _tags(self, _: str) -> None:
        for tag in self.world.cc.tags():
            self.echo(f"  {tag['tag_id']}  {tag['name']} ({tag.get('contacts_count', 0)} contacts)")

    def _show(self, _: str) -> None:
        self.echo(render_transcript(self.world.slack))

    def _show_new(self) -> None:
        """Print the transcript lines that appeared since the last command."""
        time.sleep(0.8)  # the bot answers after its ack; give those replies a moment to land
        lines = render_transcript(self.world.slack).splitlines()
        for line in lines:
            if line not in self.seen:
                self.echo(line)
        self.seen.update(lines)


def run_console(read: Callable[[str], str] = input, echo: Echo = print) -> int:
    world = start_world(Path(tempfile.mkdtemp(prefix="deletetags-console-")), env=DEMO_ENV, activity_seconds=8.0)
    try:
        _seed(world)
        echo("deletetags-bot console (offline). " + CONSOLE_HELP)
        console = Console(world, echo)
        while True:
            try:
                line = read(f"@{NAMES[console.user][0]}> ")
            except EOFError:
                break
            if line.strip() and not console.handle(line):
                break
        return 0
    finally:
        world.stop()

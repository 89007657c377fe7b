"""Small helpers for end-to-end tests: find what the bot showed whom."""

from __future__ import annotations

from bot.sandbox.world import World

FAST_POLLS = {"POLL_MIN_SECONDS": "0.2", "POLL_MAX_SECONDS": "1", "RECONCILE_DELAY_SECONDS": "0.5"}


def add_tags(world: World, *tags: tuple[str, int]) -> list[str]:
    return [world.cc.add_tag(name, count) for name, count in tags]


def last_ephemeral(world: World, user: str, containing: str = ""):  # noqa: ANN201
    def find():  # noqa: ANN202
        shown = [e for e in world.slack.ephemerals if e.user == user and containing in e.text + str(e.blocks)]
        return shown[-1] if shown else None

    return world.driver.wait_for(find, what=f"an ephemeral for {user} containing {containing!r}")


def preview_for(world: World, user: str):  # noqa: ANN201
    return last_ephemeral(world, user, "Request approval")


def card(world: World, request_id: int | None = None):  # noqa: ANN201
    def find():  # noqa: ANN202
        for message in world.slack.messages(world.channel):
            if "Deletion request #" in message.text and (request_id is None or f"#{request_id} " in message.text):
                return message
        return None

    return world.driver.wait_for(find, what="the request card")


def refreshed(world: World, message):  # noqa: ANN001, ANN201
    world.flush_slack()
    return world.slack.message(message.channel, message.ts)


def request_to_card(world: World, text: str, user: str | None = None):  # noqa: ANN201
    """Type a request, confirm the preview, and return (request id, card)."""
    user = user or world.people.requester
    world.driver.slash_command(user, world.channel, text)
    preview = preview_for(world, user)
    world.driver.click(user, preview, "Request approval")
    message = card(world)
    request_id = int(message.text.split("#", 1)[1].split(" ", 1)[0])
    return request_id, message


def three_tags_on_373_contacts(world: World, *, one_deleted: bool = False) -> tuple[list[str], dict[str, set[str]]]:
    """Newsletter Test 4, Imported by mistake 57, Old Webinar 2023 312 contacts, some unsubscribed, and
    with `one_deleted` one of them deleted (a snapshot asks with status=all); (ids, contacts per id)."""
    ids = add_tags(world, ("Newsletter Test", 0), ("Imported by mistake", 0), ("Old Webinar 2023", 0))
    for tag_id, active, unsubscribed in zip(ids, (3, 50, 300), (1, 7, 12), strict=True):
        world.cc.add_contacts(tag_id, active)
        world.cc.add_contacts(tag_id, unsubscribed, status="unsubscribed")
    if one_deleted:
        world.cc.delete_contact(sorted(world.cc.contacts_with_tag(ids[2]))[0])
    return ids, {tag_id: set(world.cc.contacts_with_tag(tag_id)) for tag_id in ids}


def finished(world: World, request_id: int, timeout: float = 30) -> str:
    """The state a request ends in."""
    return world.driver.wait_for(lambda: (r := world.store.get_request(request_id)) and r.is_terminal and r.state,
                                 what=f"request #{request_id} to end", timeout=timeout)


def restore_to_card(world: World, text: str):  # noqa: ANN201
    """Type `/deletetags restore …` as the requester and confirm its preview; (restore id, preview, card)."""
    seen = len(world.slack.ephemerals)
    world.driver.slash_command(world.people.requester, world.channel, text)
    preview = world.driver.wait_for(lambda: next((e for e in world.slack.ephemerals[seen:]
                                                  if "Preview of restore" in e.text), None), what="the restore preview")
    world.driver.click(world.people.requester, preview, "Request approval")
    found = world.driver.wait_for(lambda: next((m for m in world.slack.messages(world.channel)
                                                if "Restore request #" in m.text), None), what="the restore card")
    return int(found.text.split("Restore request #", 1)[1].split(" ", 1)[0]), preview, found

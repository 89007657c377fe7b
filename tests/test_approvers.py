from bot.approvers import ApproverDirectory, GroupsUnavailable


def test_group_members_join_the_ids_and_are_cached() -> None:
    calls: list[str] = []
    now = [0.0]

    def lookup(group: str) -> list[str]:
        calls.append(group)
        return ["U0GRACE"]

    directory = ApproverDirectory(["U0ALEX"], "S0LEADS", lookup, cache_seconds=60, clock=lambda: now[0])
    assert set(directory.current().user_ids) == {"U0ALEX", "U0GRACE"}
    directory.current()
    assert calls == ["S0LEADS"]
    now[0] = 61
    directory.current()
    assert calls == ["S0LEADS", "S0LEADS"]


def test_a_plan_without_groups_falls_back_to_ids_with_a_warning() -> None:
    def lookup(group: str) -> list[str]:
        raise GroupsUnavailable()

    approvers = ApproverDirectory(["U0ALEX"], "S0LEADS", lookup).current()
    assert approvers.user_ids == {"U0ALEX"} and "no user groups" in (approvers.warning or "")


def test_a_failing_group_lookup_fails_closed() -> None:
    def lookup(group: str) -> list[str]:
        raise LookupError("no user group with the handle @nope")

    approvers = ApproverDirectory(["U0ALEX"], "nope", lookup).current()
    assert approvers.user_ids == {"U0ALEX"} and "only APPROVER_IDS" in (approvers.warning or "")

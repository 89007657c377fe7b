"""manifest.yml asks Slack for exactly what the code uses, and the derivation notices new uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.ops import scopes
from bot.ops.scopes import (
    UnmappedSlackUsage,
    events_for,
    required_events,
    required_scopes,
    scan_source,
    scopes_for,
    slash_commands,
)

ROOT = Path(__file__).resolve().parents[2]
CHECK_MODULE = ROOT / "bot" / "ops" / "check.py"

# The parts of Slack's manifest schema (slackapi/manifest-schema, v1) this manifest uses.
TEXT = {"type": "string"}
FLAG = {"type": "boolean"}
MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_metadata", "display_information", "features", "oauth_config", "settings"],
    "additionalProperties": False,
    "properties": {
        "_metadata": {"type": "object", "properties": {"major_version": {"const": 1}}, "required": ["major_version"]},
        "display_information": {
            "type": "object", "additionalProperties": False, "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 35},
                "description": {"type": "string", "minLength": 1, "maxLength": 140},
                "long_description": {"type": "string", "minLength": 175, "maxLength": 4000},
                "background_color": {"type": "string", "pattern": "^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$"},
            },
        },
        "features": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "app_home": {"type": "object", "additionalProperties": False, "properties": {
                    "home_tab_enabled": FLAG, "messages_tab_enabled": FLAG, "messages_tab_read_only_enabled": FLAG}},
                "bot_user": {"type": "object", "additionalProperties": False, "required": ["display_name"],
                             "properties": {"display_name": {"type": "string", "maxLength": 80}, "always_online": FLAG}},
                "slash_commands": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["command", "description"],
                    "properties": {
                        "command": {"type": "string", "minLength": 2, "maxLength": 32, "pattern": "^/"},
                        "url": {"type": "string", "pattern": "^https?://"},
                        "description": {"type": "string", "minLength": 1, "maxLength": 2000},
                        "usage_hint": {"type": "string", "minLength": 1, "maxLength": 1000},
                        "should_escape": FLAG,
                    }}},
            },
        },
        "oauth_config": {"type": "object", "additionalProperties": False, "properties": {"scopes": {
            "type": "object", "additionalProperties": False,
            "properties": {"bot": {"type": "array", "uniqueItems": True, "items": {"type": "string", "maxLength": 50}}}}}},
        "settings": {"type": "object", "additionalProperties": False, "properties": {
            "event_subscriptions": {"type": "object", "additionalProperties": False, "properties": {
                "request_url": TEXT,
                "bot_events": {"type": "array", "uniqueItems": True, "items": {"type": "string", "maxLength": 50}}}},
            "interactivity": {"type": "object", "required": ["is_enabled"], "additionalProperties": False,
                              "properties": {"is_enabled": FLAG, "request_url": TEXT}},
            "org_deploy_enabled": FLAG, "socket_mode_enabled": FLAG, "token_rotation_enabled": FLAG}},
    },
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))


def test_manifest_follows_slacks_schema(manifest: dict[str, Any]) -> None:
    jsonschema.validate(manifest, MANIFEST_SCHEMA)


def test_bot_scopes_are_exactly_what_the_code_needs(manifest: dict[str, Any]) -> None:
    listed = manifest["oauth_config"]["scopes"]["bot"]
    assert set(listed) == required_scopes()
    assert len(listed) == len(set(listed))


def test_bot_events_are_exactly_what_the_listeners_need(manifest: dict[str, Any]) -> None:
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == required_events()


def test_slash_command_is_declared_as_the_code_registers_it(manifest: dict[str, Any]) -> None:
    declared = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(declared) == slash_commands() == {"/deletetags"}
    command = declared["/deletetags"]
    assert command["description"] and command["usage_hint"]
    assert command["should_escape"] is False
    assert "url" not in command  # Socket Mode: Slack delivers commands over the socket


def test_app_settings(manifest: dict[str, Any]) -> None:
    features, settings = manifest["features"], manifest["settings"]
    assert manifest["_metadata"]["major_version"] == 1
    assert manifest["display_information"]["name"] == "deletetags"
    assert features["bot_user"] == {"display_name": "deletetags", "always_online": True}
    assert features["app_home"] == {
        "home_tab_enabled": True, "messages_tab_enabled": True, "messages_tab_read_only_enabled": False}
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_current_code_needs_the_expected_scopes() -> None:
    # A readable statement of today's needs; the equality tests above are the real guard.
    needed = required_scopes()
    assert {"commands", "chat:write", "files:read", "usergroups:read", "app_mentions:read"} <= needed
    assert {"channels:history", "groups:history", "im:history", "mpim:history"} <= needed
    assert "files:write" in needed  # the notifier uploads files into request threads
    assert required_events() >= {"message.channels", "message.groups", "message.im", "message.mpim",
                                 "app_mention", "app_home_opened"}


def test_a_new_web_api_call_is_noticed_and_mapped() -> None:
    needs = scan_source("def remind(client):\n    client.users_info(user='U1')\n", "bot/new.py")
    assert needs.methods == {"users.info": ["bot/new.py:2"]}
    assert scopes_for(needs) == {"users:read"}


def test_every_way_of_calling_slack_is_noticed() -> None:
    source = (
        "def f(self, client, say):\n"
        "    self.client.conversations_open(users='U1')\n"
        "    client.api_call('reactions.add', params={})\n"
        "    say('hi')\n"
        "    client.views_publish(user_id='U1', view={})\n"
    )
    needs = scan_source(source)
    assert set(needs.methods) == {"conversations.open", "reactions.add", "chat.postMessage", "views.publish"}
    assert scopes_for(needs) == {"im:write", "reactions:write", "chat:write"}


def test_a_method_missing_from_the_table_fails_with_a_clear_message() -> None:
    needs = scan_source("def later(client):\n    client.chat_scheduleMessage(channel='C1', text='x', post_at=1)\n",
                        "bot/later.py")
    with pytest.raises(UnmappedSlackUsage) as failure:
        scopes_for(needs)
    message = str(failure.value)
    assert "bot/later.py:2" in message and "chat.scheduleMessage" in message and "METHOD_SCOPES" in message


def test_listener_registrations_map_to_events_and_scopes() -> None:
    source = (
        "KINDS = ('app_mention', 'app_home_opened')\n"
        "def register(app):\n"
        "    @app.event('message')\n"
        "    def on_message(event): ...\n"
        "    for kind in KINDS:\n"
        "        pass\n"
        "    app.event({'type': 'file_shared'})(print)\n"
        "    app.command('/deletetags')(print)\n"
    )
    needs = scan_source(source)
    assert set(needs.events) == {"message", "file_shared"}
    assert set(needs.commands) == {"/deletetags"}
    assert events_for(needs) == {"message.channels", "message.groups", "message.im", "message.mpim", "file_shared"}
    assert scopes_for(needs) == {"commands", "files:read", "channels:history", "groups:history", "im:history",
                                 "mpim:history"}


def test_an_unknown_or_unreadable_event_fails_clearly() -> None:
    with pytest.raises(UnmappedSlackUsage, match="reaction_added"):
        events_for(scan_source("def r(app):\n    app.event('reaction_added')(print)\n"))
    with pytest.raises(UnmappedSlackUsage, match="string literal"):
        events_for(scan_source("def r(app, name):\n    app.event(name)(print)\n"))


def test_uploading_a_file_needs_files_write_however_it_is_called() -> None:
    helper = scan_source("def f(client):\n    client.files_upload_v2(channel='C', content=b'x', filename='a.csv')\n",
                         "bot/up.py")
    methods = {"files.getUploadURLExternal", "files.completeUploadExternal"}
    assert helper.methods == {method: ["bot/up.py:2"] for method in methods}
    steps = scan_source(
        "def f(client):\n"
        "    ticket = client.files_getUploadURLExternal(filename='a.csv', length=1)\n"
        "    client.files_completeUploadExternal(files=[{'id': ticket['file_id']}], channel_id='C')\n")
    assert set(steps.methods) == methods
    assert scopes_for(helper) == scopes_for(steps) == {"files:write"}


def test_the_retired_files_upload_is_not_mapped() -> None:
    needs = scan_source("def f(client):\n    client.files_upload(channels='C', content='x')\n", "bot/old.py")
    with pytest.raises(UnmappedSlackUsage, match=r"bot/old.py:2 calls Slack's files\.upload,"):
        scopes_for(needs)


def test_downloading_shared_files_needs_files_read() -> None:
    needs = scan_source("def get(file):\n    return file['url_private_download']\n")
    assert scopes_for(needs) == {"files:read"}


def test_a_new_module_in_the_package_changes_what_is_required(tmp_path: Path) -> None:
    package = tmp_path / "bot"
    (package / "sandbox").mkdir(parents=True)
    (package / "notify.py").write_text("def f(client):\n    client.chat_postMessage(channel='C', text='x')\n")
    (package / "sandbox" / "fake.py").write_text("def f(client):\n    client.users_info(user='U')\n")
    assert required_scopes(package) == {"chat:write"}
    (package / "later.py").write_text("def f(client):\n    client.users_info(user='U')\n")
    assert required_scopes(package) == {"chat:write", "users:read"}


def test_the_checks_own_slack_calls_need_no_scope_beyond_the_manifest(manifest: dict[str, Any]) -> None:
    # `check` is excluded from the derivation, so it must make do with what the bot is granted anyway.
    needs = scan_source(CHECK_MODULE.read_text(encoding="utf-8"), "bot/ops/check.py")
    assert needs.methods, "the scan should find the check's own calls"
    assert scopes.scopes_of_methods(needs.methods) <= set(manifest["oauth_config"]["scopes"]["bot"])


def test_procfile_runs_both_modes() -> None:
    lines = (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    assert lines == ["web: deletetags-bot run", "worker: deletetags-bot run --socket"]

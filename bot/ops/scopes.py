"""What the bot needs from Slack, read from its own source: bot scopes and event subscriptions.

`manifest.yml` must ask for exactly this (a test holds the two together), and `deletetags-bot
check` compares it with the scopes the installed token really has.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from slack_sdk import WebClient
from slack_sdk.web.base_client import BaseClient

BOT_PACKAGE = Path(__file__).resolve().parents[1]
# Offline stand-ins and the operator tools are not the bot: they call Slack for other reasons.
EXCLUDED_DIRS = ("sandbox", "ops")
ALL_HISTORY = frozenset({"channels:history", "groups:history", "im:history", "mpim:history"})
ALL_READ = frozenset({"channels:read", "groups:read", "im:read", "mpim:read"})

# Bot-token scopes per Web API method, as Slack's method reference lists them. A method that
# works on any conversation type needs the scope of every type, since the code cannot tell which.
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "auth.test": frozenset(),
    # Called with the app-level token (its own scope, connections:write), never the bot token.
    "apps.connections.open": frozenset(),
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.delete": frozenset({"chat:write"}),
    "chat.getPermalink": frozenset(),
    "conversations.open": frozenset({"im:write"}),
    "conversations.info": ALL_READ,
    "conversations.members": ALL_READ,
    "conversations.history": ALL_HISTORY,
    "conversations.replies": ALL_HISTORY,
    "users.info": frozenset({"users:read"}),
    "usergroups.list": frozenset({"usergroups:read"}),
    "usergroups.users.list": frozenset({"usergroups:read"}),
    "files.info": frozenset({"files:read"}),
    "files.getUploadURLExternal": frozenset({"files:write"}),
    "files.completeUploadExternal": frozenset({"files:write"}),
    "reactions.add": frozenset({"reactions:write"}),
    "views.open": frozenset(),
    "views.push": frozenset(),
    "views.update": frozenset(),
    "views.publish": frozenset(),
}


# slack_sdk helpers that make several Web API calls under one name. files_upload_v2 is
# files.getUploadURLExternal, a POST of the bytes to the URL it returns (no method, no token), then
# files.completeUploadExternal. (Its predecessor files_upload calls files.upload, which Slack retired;
# it is left unmapped, so using it fails the derivation.)
SDK_HELPERS: dict[str, tuple[str, ...]] = {
    "files_upload_v2": ("files.getUploadURLExternal", "files.completeUploadExternal"),
}


@dataclass(frozen=True)
class Subscription:
    """What one Bolt event listener needs: the manifest's bot_events and the scopes behind them."""

    bot_events: frozenset[str]
    scopes: frozenset[str]


# `message` covers every conversation type the bot is in: uploads arrive in DMs, status
# questions in channel threads (public, private, group DMs).
EVENT_SUBSCRIPTIONS: dict[str, Subscription] = {
    "message": Subscription(
        frozenset({"message.channels", "message.groups", "message.im", "message.mpim"}), ALL_HISTORY
    ),
    "app_mention": Subscription(frozenset({"app_mention"}), frozenset({"app_mentions:read"})),
    "app_home_opened": Subscription(frozenset({"app_home_opened"}), frozenset()),
    "file_shared": Subscription(frozenset({"file_shared"}), frozenset({"files:read"})),
    "member_joined_channel": Subscription(frozenset({"member_joined_channel"}), frozenset({"channels:read", "groups:read"})),
}

# Bolt's `say()` posts with chat.postMessage.
SAY_METHOD = "chat.postMessage"
# Downloading `url_private` files with the bot token needs files:read (without it Slack
# answers with its HTML sign-in page).
FILE_DOWNLOAD_SCOPE = "files:read"
COMMANDS_SCOPE = "commands"


class UnmappedSlackUsage(Exception):
    """The code uses a Slack method or event this module has no scopes for."""


@dataclass
class CodeNeeds:
    """Every Slack use found in the code, each with where it was found ("bot/x.py:12")."""

    methods: dict[str, list[str]] = field(default_factory=dict)
    events: dict[str, list[str]] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    shortcuts: dict[str, list[str]] = field(default_factory=dict)
    file_downloads: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def merge(self, other: CodeNeeds) -> None:
        for mine, theirs in ((self.methods, other.methods), (self.events, other.events),
                             (self.commands, other.commands), (self.shortcuts, other.shortcuts)):
            for key, places in theirs.items():
                mine.setdefault(key, []).extend(places)
        self.file_downloads.extend(other.file_downloads)
        self.problems.extend(other.problems)


def web_api_method(attribute: str) -> str | None:
    """`chat_postMessage` -> `chat.postMessage` when it is a Web API method of slack_sdk's WebClient."""
    if attribute.startswith("_") or hasattr(BaseClient, attribute):
        return None
    if not callable(getattr(WebClient, attribute, None)):
        return None
    return attribute.replace("_", ".")


def _receiver_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _first_argument(call: ast.Call, keyword: str) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _literal_strings(node: ast.expr | None, constants: dict[str, list[str]]) -> list[str] | None:
    """The string(s) an argument stands for: a literal, a module-level constant, or {"type": ...}."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and key.value == "type":
                return _literal_strings(value, constants)
    return None


def _module_constants(tree: ast.Module) -> dict[str, list[str]]:
    constants: dict[str, list[str]] = {}
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1):
            continue
        target, value = statement.targets[0], statement.value
        if not isinstance(target, ast.Name):
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            constants[target.id] = [value.value]
        elif isinstance(value, (ast.Tuple, ast.List)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
        ):
            constants[target.id] = [e.value for e in value.elts]  # type: ignore[union-attr]
    return constants


class _Scanner(ast.NodeVisitor):
    def __init__(self, where: str, constants: dict[str, list[str]]) -> None:
        self.where = where
        self.constants = constants
        self.needs = CodeNeeds()

    def _at(self, node: ast.AST) -> str:
        return f"{self.where}:{getattr(node, 'lineno', 0)}"

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "url_private" in node.value:
            self.needs.file_downloads.append(self._at(node))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "say":
            self.needs.methods.setdefault(SAY_METHOD, []).append(self._at(node))
        elif isinstance(func, ast.Attribute):
            self._attribute_call(node, func)
        self.generic_visit(node)

    def _attribute_call(self, node: ast.Call, func: ast.Attribute) -> None:
        if func.attr == "api_call":
            names = _literal_strings(_first_argument(node, "api_method"), self.constants)
            self._add_or_complain(self.needs.methods, names, node, "the Web API method passed to api_call")
            return
        if func.attr in SDK_HELPERS:
            for method in SDK_HELPERS[func.attr]:
                self.needs.methods.setdefault(method, []).append(self._at(node))
            return
        method = web_api_method(func.attr)
        if method:
            self.needs.methods.setdefault(method, []).append(self._at(node))
            return
        if _receiver_name(func.value) != "app":
            return
        if func.attr == "event":
            names = _literal_strings(_first_argument(node, "event"), self.constants)
            self._add_or_complain(self.needs.events, names, node, "the event of app.event(...)")
        elif func.attr == "message":
            self.needs.events.setdefault("message", []).append(self._at(node))
        elif func.attr == "command":
            names = _literal_strings(_first_argument(node, "command"), self.constants)
            self._add_or_complain(self.needs.commands, names, node, "the command of app.command(...)")
        elif func.attr == "shortcut":
            self.needs.shortcuts.setdefault("shortcut", []).append(self._at(node))

    def _add_or_complain(self, into: dict[str, list[str]], names: list[str] | None, node: ast.Call,
                         what: str) -> None:
        if names is None:
            self.needs.problems.append(
                f"{self._at(node)}: cannot tell {what}; pass a string literal or a module-level constant")
            return
        for name in names:
            into.setdefault(name, []).append(self._at(node))


def scan_source(source: str, where: str = "<source>") -> CodeNeeds:
    """The Slack uses in one module's source text."""
    tree = ast.parse(source, filename=where)
    scanner = _Scanner(where, _module_constants(tree))
    scanner.visit(tree)
    return scanner.needs


def bot_modules(root: Path = BOT_PACKAGE) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).parts
        if relative[0] not in EXCLUDED_DIRS:
            yield path


def scan_package(root: Path = BOT_PACKAGE) -> CodeNeeds:
    needs = CodeNeeds()
    for path in bot_modules(root):
        where = f"{root.name}/{path.relative_to(root).as_posix()}"
        needs.merge(scan_source(path.read_text(encoding="utf-8"), where))
    return needs


def _unmapped(needs: CodeNeeds) -> list[str]:
    problems = list(needs.problems)
    for method, places in sorted(needs.methods.items()):
        if method not in METHOD_SCOPES:
            problems.append(
                f"{places[0]} calls Slack's {method}, which METHOD_SCOPES in bot/ops/scopes.py does not list: "
                "add it with the bot scopes Slack's method reference names (frozenset() for none)")
    for event, places in sorted(needs.events.items()):
        if event not in EVENT_SUBSCRIPTIONS:
            problems.append(
                f"{places[0]} listens to the `{event}` event, which EVENT_SUBSCRIPTIONS in bot/ops/scopes.py "
                "does not list: add its bot_events and scopes")
    return problems


def _checked(needs: CodeNeeds) -> CodeNeeds:
    problems = _unmapped(needs)
    if problems:
        raise UnmappedSlackUsage("\n".join(problems))
    return needs


def scopes_for(needs: CodeNeeds) -> set[str]:
    _checked(needs)
    scopes: set[str] = set()
    for method in needs.methods:
        scopes |= METHOD_SCOPES[method]
    for event in needs.events:
        scopes |= EVENT_SUBSCRIPTIONS[event].scopes
    if needs.commands or needs.shortcuts:
        scopes.add(COMMANDS_SCOPE)
    if needs.file_downloads:
        scopes.add(FILE_DOWNLOAD_SCOPE)
    return scopes


def events_for(needs: CodeNeeds) -> set[str]:
    _checked(needs)
    events: set[str] = set()
    for event in needs.events:
        events |= EVENT_SUBSCRIPTIONS[event].bot_events
    return events


def required_scopes(root: Path = BOT_PACKAGE) -> set[str]:
    """Every bot scope the code needs; raises UnmappedSlackUsage for a use this module cannot map."""
    return scopes_for(scan_package(root))


def required_events(root: Path = BOT_PACKAGE) -> set[str]:
    """Every bot event subscription (manifest `bot_events`) the code's listeners need."""
    return events_for(scan_package(root))


def slash_commands(root: Path = BOT_PACKAGE) -> set[str]:
    return set(scan_package(root).commands)


def scopes_of_methods(methods: Iterable[str]) -> set[str]:
    """The scopes a set of Web API methods needs (KeyError for an unmapped one)."""
    scopes: set[str] = set()
    for method in methods:
        scopes |= METHOD_SCOPES[method]
    return scopes

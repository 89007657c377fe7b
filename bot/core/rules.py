"""Finding tags to delete by rule instead of by id. Pure.

    empty                          tags on no contact
    matching "Webinar 2023*"       names like the pattern: `*` any characters, `?` one; case-insensitive
    created before 2024-01-01      created before that day began (UTC)
    created after 2024-01-01       created after that day ended (UTC)

Clauses are joined with `and`: a tag must satisfy all of them. A rule is evaluated once, against the
account as it is when the preview is made; the request then holds that list of tags, never the rule.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from bot.core.mrkdwn import outside_text

RULE_WORDS = frozenset({"empty", "matching", "created"})
MAX_PATTERN_LENGTH = 255  # Constant Contact's longest tag name
FORMS = ('`empty`, `matching "Webinar 2023*"`, `created before 2024-01-01` or `created after 2024-01-01`, '
         "joined with `and`")
# Slack clients may turn straight quotes into curly ones.
_QUOTES = {'"': '"', "“": "”", "”": "”", "„": "“"}
_SHOWN = 60  # characters of a misread part quoted back


class RuleError(ValueError):
    """A rule that could not be read; `message` names the part and shows the right form."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RuleTag(Protocol):
    """A tag of the account as a listing shows it (`bot.constant_contact.Tag` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def contacts_count(self) -> int | None: ...

    @property
    def created_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Empty:
    def matches(self, tag: RuleTag) -> bool:
        return tag.contacts_count == 0

    def describe(self) -> str:
        return "empty"


@dataclass(frozen=True)
class Matching:
    pattern: str

    def matches(self, tag: RuleTag) -> bool:
        return _glob(self.pattern).match(_comparable(tag.name)) is not None

    def describe(self) -> str:
        return f'matching "{self.pattern}"'


@dataclass(frozen=True)
class Created:
    before: bool
    day: date

    def matches(self, tag: RuleTag) -> bool:
        if tag.created_at is None:
            return False  # cannot tell: never selected by a date
        start = datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)
        return tag.created_at < start if self.before else tag.created_at >= start + timedelta(days=1)

    def describe(self) -> str:
        return f"created {'before' if self.before else 'after'} {self.day.isoformat()}"


Clause = Empty | Matching | Created


@dataclass(frozen=True)
class Rule:
    clauses: tuple[Clause, ...]

    def matches(self, tag: RuleTag) -> bool:
        return all(clause.matches(tag) for clause in self.clauses)

    def select(self, account_tags: Iterable[RuleTag]) -> list[RuleTag]:
        return [tag for tag in account_tags if self.matches(tag)]

    @property
    def text(self) -> str:
        """The rule as the bot reads it back (plain text; escape it for Slack)."""
        return " and ".join(clause.describe() for clause in self.clauses)


def parse_rule(text: str) -> Rule:
    """Read a rule; RuleError names the part that could not be read and shows the right form."""
    tokens = _tokens(text)
    if not tokens:
        raise RuleError(f"Which tags? Write a rule: {FORMS}.")
    clauses: list[Clause] = []
    position = 0
    while position < len(tokens):
        if clauses:
            position = _expect_and(tokens, position)
        clause, position = _clause(tokens, position)
        clauses.append(clause)
    return Rule(tuple(dict.fromkeys(clauses)))


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str
    quoted: bool


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    rest = text.strip()
    while rest:
        opening = rest[0]
        if opening in _QUOTES:
            closing = rest.find(_QUOTES[opening], 1)
            if closing < 0:
                raise RuleError(f"The pattern {_shown(rest)} has no closing quote: write "
                                '`matching "Webinar 2023*"`.')
            tokens.append(_Token(rest[1:closing], True))
            rest = rest[closing + 1:].lstrip()
        else:
            word = rest.split(None, 1)[0]
            tokens.append(_Token(word, False))
            rest = rest[len(word):].lstrip()
    return tokens


def _expect_and(tokens: Sequence[_Token], position: int) -> int:
    token = tokens[position]
    word = token.text.lower()
    if not token.quoted and word == "and":
        if position + 1 == len(tokens):
            raise RuleError(f"The rule ends with `and`: add the next part, for example `and empty`. Rules: {FORMS}.")
        return position + 1
    if not token.quoted and word == "or":
        raise RuleError("Rules are joined with `and` only (a tag must match every part); for either of two "
                        "rules, send two requests.")
    raise RuleError(f"I expected `and` before {_shown(token.text)}. Rules: {FORMS}.")


def _clause(tokens: Sequence[_Token], position: int) -> tuple[Clause, int]:
    token = tokens[position]
    word = token.text.lower()
    if token.quoted or word not in RULE_WORDS:
        raise RuleError(f"I could not read {_shown(token.text)} in the rule. Rules: {FORMS}.")
    if word == "empty":
        return Empty(), position + 1
    if word == "matching":
        return _matching(tokens, position + 1)
    return _created(tokens, position + 1)


def _matching(tokens: Sequence[_Token], position: int) -> tuple[Clause, int]:
    if position >= len(tokens) or (not tokens[position].quoted and tokens[position].text.lower() == "and"):
        raise RuleError('`matching` needs a pattern in quotes, for example `matching "Webinar 2023*"`.')
    pattern = " ".join(tokens[position].text.split())
    if not pattern:
        raise RuleError('The pattern after `matching` is empty: write one, for example `matching "Webinar 2023*"`.')
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RuleError(f"The pattern after `matching` is longer than {MAX_PATTERN_LENGTH} characters, "
                        "the longest a tag name can be.")
    return Matching(pattern), position + 1


def _created(tokens: Sequence[_Token], position: int) -> tuple[Clause, int]:
    when = tokens[position].text.lower() if position < len(tokens) else ""
    if when not in ("before", "after") or tokens[position].quoted:
        raise RuleError("`created` needs `before` or `after` and a date, for example `created before 2024-01-01`.")
    if position + 1 >= len(tokens):
        raise RuleError(f"`created {when}` needs a date, for example `created {when} 2024-01-01`.")
    return Created(when == "before", _day(tokens[position + 1].text, when)), position + 2


def _day(text: str, when: str) -> date:
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise RuleError(f"{_shown(text)} is not a date: write it as YYYY-MM-DD, for example "
                        f"`created {when} 2024-01-01`.") from None


def _shown(text: str) -> str:
    return f"`{outside_text(text, _SHOWN) or ' '}`"


# --- matching -------------------------------------------------------------------------------


def _comparable(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _glob(pattern: str) -> re.Pattern[str]:
    return _compiled(_comparable(pattern))


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    # fnmatch's translation keeps many `*` from backtracking badly; `[` would open a character class
    # there, and here it is just a character of a name.
    return re.compile(fnmatch.translate(pattern.replace("[", "[[]")))

"""Outside text in Slack messages: the one rule for everything a person or another system wrote. Pure.

Tag names, reasons, file names, Constant Contact's error texts and anything else the bot did not
write itself go through `outside_text` before they are put into mrkdwn. What Slack documents
("Formatting text for app surfaces"):

* `&`, `<` and `>` are Slack's control characters: `<!channel>` notifies a channel, `<@U…>` mentions
  someone, `<https://a|b>` is a link labelled with anything. Slack asks for them as `&amp;`, `&lt;`,
  `&gt;`, and shows those entities as the characters.
* mrkdwn has no escape for its formatting characters (no backslash escape as in Markdown): `*bold*`,
  `_italic_`, `~strike~` and `` `code` `` apply wherever the characters pair up, also with the bot's
  own `*` or backticks around the outside text.
* A newline in the text starts a new line, so text with newlines can write lines that look like the
  bot's own (a fake "*Status:* Approved" line on a request card).

So outside text is reduced to one line: control characters, line and paragraph separators become
spaces (other spaces are kept: two tag names may differ only by them), and bidirectional overrides
and isolates are dropped, since they would reorder the bot's words that follow on the same line. Its
`&`, `<`, `>` become entities, and its formatting characters look-alikes that Slack does not parse:
`*` → `∗` (asterisk operator), `_` → `ˍ` (modifier letter low macron), `~` → `∼` (tilde operator),
`` ` `` → `ˋ` (modifier letter grave accent). Zero-width characters beside the originals were not
chosen: whether Slack's parser takes them as word boundaries is undocumented, and clients may drop
them. The cost of look-alikes: a name copied out of Slack differs in those characters, which is why
lists show the tag id (exact, in code) beside each name. Emoji codes without an underscore
(`:smile:`) still render; they cannot mention, link or format.

`plain_text` fields are not parsed, so they only need `one_line`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

TEXT_LIMIT = 4_000  # a message's `text`: Slack truncates or refuses (msg_too_long) longer ones

ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
LOOK_ALIKES = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}
_OUTSIDE = str.maketrans({**ENTITIES, **LOOK_ALIKES})
# Embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) and the direction marks.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
_PARTIAL_ENTITY = re.compile(r"&[a-z]*$")
ELLIPSIS = "…"


def outside_text(text: str, limit: int | None = None) -> str:
    """Text someone else wrote, safe in mrkdwn: one line, no mention, link or formatting; at most
    `limit` characters (escaped), cut with an ellipsis."""
    escaped = one_line(text).translate(_OUTSIDE)
    return escaped if limit is None else _cut(escaped, limit)


def outside_text_with_advice(text: str, advice: Sequence[str], limit: int | None = None) -> str:
    """Like `outside_text`, except that a sentence of our own advice at the end (one of `advice`,
    written in mrkdwn by us) is kept as it is, so that its `commands` still read as code."""
    for own in advice:
        if text.endswith(own) and len(own) < len(text) and (limit is None or limit > 2 * len(own)):
            head = text[: -len(own)].rstrip()
            return f"{outside_text(head, None if limit is None else max(limit - len(own) - 1, 1))} {own}"
    return outside_text(text, limit)


def one_line(text: str) -> str:
    """Text whose control characters and line breaks are spaces (for plain_text too). Other spaces
    stay as they are: two tags may differ only by them."""
    if text.isprintable():
        return text
    return "".join(" " if unicodedata.category(char) in _LINE_BREAKING else char
                   for char in text.replace("\r\n", "\n") if char not in _BIDI_CONTROLS)


def _cut(escaped: str, limit: int) -> str:
    if len(escaped) <= limit:
        return escaped
    head = escaped[: max(limit - len(ELLIPSIS), 0)]
    return _PARTIAL_ENTITY.sub("", head) + ELLIPSIS  # never half an entity such as "&am"


def fit_lines(lines: Sequence[str], budget: int, more: Callable[[int], str], left_out: int = 0) -> str:
    """`lines` joined by newlines in at most `budget` characters. When some are cut (or `left_out`
    more were never offered), as many as fit are followed by `more(number not shown)`."""
    whole = "\n".join(lines)
    if len(whole) <= budget and not left_out:
        return whole
    room = budget - len(more(left_out + len(lines))) - 1  # the longest "more" line, and its newline
    shown: list[str] = []
    used = -1  # no newline before the first line
    for line in lines:
        if used + 1 + len(line) > room:
            break
        used += 1 + len(line)
        shown.append(line)
    return "\n".join([*shown, more(left_out + len(lines) - len(shown))])

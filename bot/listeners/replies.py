"""Small helpers shared by listeners for answering people."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from bot.core.advice import OWN_ADVICE
from bot.core.mrkdwn import outside_text_with_advice
from bot.core.tags import InputError

log = logging.getLogger(__name__)
T = TypeVar("T")


def explain_cc_error(work: Callable[[], T]) -> T | str:
    """Run work that talks to Constant Contact; turn its failures into a sentence for the person."""
    from bot.constant_contact import ConstantContactError

    try:
        return work()
    except InputError as error:
        return error.message
    except ConstantContactError as error:
        log.warning("Constant Contact call failed: %s", error, extra={"outcome": type(error).__name__})
        return (f":warning: I could not check the tags in Constant Contact: "
                f"{outside_text_with_advice(str(error), OWN_ADVICE, 900)} "
                "Nothing was recorded or deleted.")

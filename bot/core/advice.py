"""Our own advice at the end of an error's text. Pure.

Errors that come back from Constant Contact are outside text, escaped whole when shown in Slack. The
sentences below are ours, written in mrkdwn: `bot.core.mrkdwn.outside_text_with_advice` keeps them as they
are, so that the command to run still reads as code.
"""

CC_AUTH_HINT = "Run `deletetags-bot cc-auth` to authorise the bot with Constant Contact again."
CREDENTIALS_HINT = "Check CC_CLIENT_ID and CC_CLIENT_SECRET; if they are right, run `deletetags-bot cc-auth`."
OWN_ADVICE = (CC_AUTH_HINT, CREDENTIALS_HINT)

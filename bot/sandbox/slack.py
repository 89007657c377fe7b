"""The offline Slack: Web API emulator, a driver that acts as people, and a transcript renderer."""

from bot.sandbox.slack_driver import (
    DriverError,
    DriverResponse,
    SlackDriver,
    build_view_state,
    find_button,
    slack_escape,
)
from bot.sandbox.slack_emulator import (
    Activity,
    ApiCall,
    Channel,
    Download,
    Ephemeral,
    Message,
    MessageVersion,
    ResponsePost,
    SlackEmulator,
    SocketModeHub,
    StoredFile,
    User,
    View,
)
from bot.sandbox.transcript import readable, render_transcript

__all__ = [
    "Activity",
    "ApiCall",
    "Channel",
    "Download",
    "DriverError",
    "DriverResponse",
    "Ephemeral",
    "Message",
    "MessageVersion",
    "ResponsePost",
    "SlackDriver",
    "SlackEmulator",
    "SocketModeHub",
    "StoredFile",
    "User",
    "View",
    "build_view_state",
    "find_button",
    "readable",
    "render_transcript",
    "slack_escape",
]

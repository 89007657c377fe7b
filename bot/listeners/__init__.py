"""One module per Slack surface; `register` wires them all to the app."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, errors, events, middleware, tag_health, tag_list, views
from bot.runtime import Services


def register(app: App, services: Services) -> None:
    middleware.register(app, services)
    errors.register(app, services)
    commands.register(app, services)
    events.register(app, services)
    actions.register(app, services)
    views.register(app, services)
    tag_list.register(app, services)
    tag_health.register(app, services)

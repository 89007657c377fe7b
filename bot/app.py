"""Builds the Bolt app from settings and registers the listeners; no business logic here."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App

from bot import listeners
from bot.runtime import Services, listener_slack_client


def build_app(services: Services, listener_executor: ThreadPoolExecutor | None = None) -> App:
    settings = services.settings
    signing_secret = settings.slack_signing_secret.reveal() if settings.slack_signing_secret else None
    app = App(
        client=listener_slack_client(settings),
        signing_secret=signing_secret or "socket-mode-needs-no-signing-secret",
        # auth.test runs on the first request instead of at construction, so building the app
        # does no network work; `deletetags-bot check` verifies the token up front.
        token_verification_enabled=False,
        # Enough listener threads that slow Web API calls never delay another request's ack.
        listener_executor=listener_executor or ThreadPoolExecutor(max_workers=16, thread_name_prefix="bolt-listener"),
        # Bolt answers unmatched requests itself; our catch-all listeners ack every subscribed event.
        raise_error_for_unhandled_request=False,
    )
    listeners.register(app, services)
    return app

"""The command line: a thin layer over the library (`deletetags-bot --help`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping

import click

from bot.config import NEEDS_RUN_HTTP, NEEDS_RUN_SOCKET, Settings, SettingsError, load_settings
from bot.logs import configure_logging


def settings_or_exit(needs: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> Settings:
    try:
        settings = load_settings(os.environ if environ is None else environ, needs)
    except SettingsError as error:
        click.echo(f"deletetags-bot: {error}", err=True)
        click.echo("Every setting is described in README.md, section Settings.", err=True)
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="deletetags-bot")
def cli() -> None:
    """Delete Constant Contact contact tags in bulk from Slack, safely."""


@cli.command()
@click.option("--socket", is_flag=True, help="Use Socket Mode (the default when SLACK_APP_TOKEN is set).")
@click.option("--port", type=int, default=None, help="HTTP port (default: $PORT or 3000).")
def run(socket: bool, port: int | None) -> None:
    """Run the bot: Socket Mode with SLACK_APP_TOKEN, else HTTP on $PORT at /slack/events."""
    from bot.process import BotProcess

    environ = dict(os.environ)
    if port is not None:
        environ["PORT"] = str(port)
    socket_mode = socket or bool(environ.get("SLACK_APP_TOKEN", "").strip())
    settings = settings_or_exit(NEEDS_RUN_SOCKET if socket_mode else NEEDS_RUN_HTTP, environ)
    process = BotProcess(settings, socket_mode=socket_mode)
    process.start(serve_http_in_thread=False)
    process.serve_forever()


@cli.command()
@click.option("--port", type=int, default=8111, show_default=True, help="Port on 127.0.0.1.")
@click.option("--tags", "tag_count", type=int, default=25, show_default=True, help="Example tags to create.")
@click.option("--activity-seconds", type=float, default=20.0, show_default=True, help="How long a delete activity runs.")
@click.option("--error-rate", type=float, default=0.0, help="Share of API requests answered with a 5xx (0 to 1).")
@click.option("--latency", type=float, default=0.0, help="Seconds added before every API answer.")
@click.option("--stuck", is_flag=True, help="New activities never finish.")
@click.option("--fail-activities", is_flag=True, help="New activities end `failed` with errors.")
def sandbox(port: int, tag_count: int, activity_seconds: float, error_rate: float, latency: float,
            stuck: bool, fail_activities: bool) -> None:
    """Run the Constant Contact simulator alone on 127.0.0.1, for rehearsals."""
    from bot.sandbox.constant_contact import serve_forever

    serve_forever(port, tag_count, activity_seconds, error_rate, latency, stuck, fail_activities, echo=click.echo)


def main() -> None:
    cli(prog_name="deletetags-bot")


if __name__ == "__main__":
    main()

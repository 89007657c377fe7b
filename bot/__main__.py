"""The command line: a thin layer over the library (`deletetags-bot --help`)."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime

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
    from bot.process import BotProcess, slack_token_accepted

    environ = dict(os.environ)
    if port is not None:
        environ["PORT"] = str(port)
    socket_mode = socket or bool(environ.get("SLACK_APP_TOKEN", "").strip())
    settings = settings_or_exit(NEEDS_RUN_SOCKET if socket_mode else NEEDS_RUN_HTTP, environ)
    if not slack_token_accepted(settings):
        sys.exit(2)  # the log says why and how to fix it, as for any other setting that needs attention
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
@click.option("--slack", "with_slack", is_flag=True, help="Also run the Slack emulator on the next port (for `check`).")
def sandbox(port: int, tag_count: int, activity_seconds: float, error_rate: float, latency: float,
            stuck: bool, fail_activities: bool, with_slack: bool) -> None:
    """Run the Constant Contact simulator alone on 127.0.0.1, for rehearsals."""
    from bot.sandbox.constant_contact import serve_forever

    serve_forever(port, tag_count, activity_seconds, error_rate, latency, stuck, fail_activities, echo=click.echo,
                  slack_port=port + 1 if with_slack else None)


@cli.command()
@click.option("--socket", is_flag=True, help="Check for Socket Mode (the default when SLACK_APP_TOKEN is set).")
def check(socket: bool) -> None:
    """Check settings, database, Slack and Constant Contact; exit 1 on any failure."""
    from bot.ops import configure_tool_logging
    from bot.ops.check import all_passed, format_report, run_checks, uses_socket_mode

    environ = dict(os.environ)
    configure_tool_logging(environ, "ERROR")  # every problem is a line of the report already
    results, secrets = run_checks(environ, uses_socket_mode(environ, socket))
    click.echo(format_report(results, secrets))
    sys.exit(0 if all_passed(results) else 1)


@cli.command("cc-auth")
@click.option("--code", "use_code", is_flag=True, help="Authorisation code with PKCE instead of the device flow.")
@click.option("--redirect-uri", default="https://localhost", show_default=True,
              help="With --code: a redirect URI registered for your Constant Contact application.")
def cc_auth(use_code: bool, redirect_uri: str) -> None:
    """Connect to Constant Contact once (device flow); the tokens go into the database."""
    from bot.constant_contact import ConstantContactError
    from bot.ops import configure_tool_logging, only
    from bot.ops.cc_auth import authorise

    environ = only(os.environ, ("CC_CLIENT_ID", "CC_CLIENT_SECRET", "CC_AUTH_URL", "DELETETAGS_DB", "LOG_LEVEL"))
    settings = settings_or_exit(("CC_CLIENT_ID",), environ)
    configure_tool_logging(environ)

    def ask(question: str) -> str:
        return str(click.prompt(question, prompt_suffix=":\n"))

    try:
        db_path = authorise(settings, click.echo, ask, use_code=use_code, redirect_uri=redirect_uri)
    except (ConstantContactError, OSError, sqlite3.Error) as error:
        click.echo(f"deletetags-bot cc-auth: {error}", err=True)
        sys.exit(1)
    click.echo(f"Connected. Tokens stored in {db_path}")


@cli.command()
@click.option("--request", "request_id", type=int, help="Only this request's events.")
@click.option("--actor", "actors", multiple=True, help="Only events by this Slack user id (repeatable).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="From this UTC day on (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Up to and including this UTC day.")
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (formula-safe) instead of a table.")
def audit(request_id: int | None, actors: tuple[str, ...], since: datetime | None, until: datetime | None,
          as_csv: bool) -> None:
    """Print the audit log: who asked, who decided, what ran."""
    from bot.ops import configure_tool_logging, only
    from bot.ops.audit import AuditFilter, audit_events, report
    from bot.store import Store

    environ = only(os.environ, ("DELETETAGS_DB", "LOG_LEVEL", "LOG_FORMAT"))
    settings = settings_or_exit((), environ)
    configure_tool_logging(environ)
    if not settings.db_path.exists():
        click.echo(f"deletetags-bot audit: no database at {settings.db_path} (check DELETETAGS_DB)", err=True)
        sys.exit(1)
    if since and until and until < since:
        raise click.BadParameter("--until is before --since", param_hint="--until")
    wanted = AuditFilter(request_id, actors, since.date() if since else None, until.date() if until else None)
    store = Store(settings.db_path)
    try:
        click.echo(report(audit_events(store, wanted), as_csv), nl=False)
    finally:
        store.close()


@cli.command()
@click.argument("request_id", type=int)
@click.option("--csv", "as_csv", is_flag=True, help="Write every recorded tagging as CSV (formula-safe).")
def snapshot(request_id: int, as_csv: bool) -> None:
    """Show or export the snapshot taken before a request's tags were deleted."""
    from bot.ops import configure_tool_logging, only
    from bot.core.snapshot_report import snapshot_csv, snapshot_table
    from bot.store import Store

    environ = only(os.environ, ("DELETETAGS_DB", "LOG_LEVEL", "LOG_FORMAT"))
    settings = settings_or_exit((), environ)
    configure_tool_logging(environ)
    if not settings.db_path.exists():
        click.echo(f"deletetags-bot snapshot: no database at {settings.db_path} (check DELETETAGS_DB)", err=True)
        sys.exit(1)
    store = Store(settings.db_path)
    try:
        states = {s.state for s in store.snapshots(request_id)}
        if "complete" not in states:
            purged = "purged" in states
            why = "was purged after SNAPSHOT_RETENTION_DAYS" if purged else "was recorded"
            click.echo(f"deletetags-bot snapshot: no snapshot of request #{request_id} {why}.", err=True)
            sys.exit(1)
        rows = list(store.snapshot_taggings(request_id))
        click.echo(snapshot_csv(rows) if as_csv else snapshot_table(rows) + "\n", nl=False)
    finally:
        store.close()


@cli.command()
@click.option("--interactive", is_flag=True, help="Open a console where you type as different people.")
def demo(interactive: bool) -> None:
    """Offline walkthrough: simulator, Slack emulator and the real bot on 127.0.0.1."""
    from bot.sandbox.demo import run_console, run_demo

    configure_logging("WARNING", "text")
    sys.exit(run_console() if interactive else run_demo(echo=click.echo))


def main() -> None:
    cli(prog_name="deletetags-bot")


if __name__ == "__main__":
    main()

"""`deletetags-bot cc-auth`: the one-time Constant Contact authorisation, tokens saved in the database.

The device flow needs no redirect URI and no web server: a person opens a page, types a code,
signs in. `--code` is the authorisation-code flow with PKCE, for applications not set up for
the device flow: the person opens a URL and pastes back the address the browser ends up at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from bot.cc_oauth import AuthorizationFailed, DeviceCode, OAuthFlows, PkceRequest, StoredTokens
from bot.config import Settings
from bot.runtime import StoreTokenStore
from bot.store import Store

DEFAULT_REDIRECT_URI = "https://localhost"
SCOPE = "contact_data offline_access"
SIGN_IN_AS = "Sign in as an Account Owner or Account Manager: deleting tags needs the contacts:write privilege."

Echo = Callable[[str], None]
Ask = Callable[[str], str]


@dataclass(frozen=True)
class Redirect:
    """What came back on the redirect: a code (and the state, when a whole URL was pasted)."""

    code: str
    state: str | None


def flows_for(settings: Settings, store: Store) -> OAuthFlows:
    return OAuthFlows(
        auth_url=settings.cc_auth_url,
        client_id=settings.cc_client_id or "",
        client_secret=settings.cc_client_secret.reveal() if settings.cc_client_secret else None,
        token_store=StoreTokenStore(store),
    )


def device_instructions(device: DeviceCode) -> list[str]:
    minutes = max(1, round(device.expires_in / 60))
    lines = [
        "To connect deletetags-bot to Constant Contact, open this page in a browser:",
        f"    {device.verification_uri}",
        f"and enter the code:  {device.user_code}",
    ]
    if device.verification_uri_complete:
        lines.append(f"(or open {device.verification_uri_complete} , which fills the code in)")
    lines += [SIGN_IN_AS, f"Waiting for the approval (the code expires in {minutes} minute(s))…"]
    return lines


def run_device_flow(flows: OAuthFlows, echo: Echo) -> StoredTokens:
    """Start the device flow, show the person what to do, wait until they approve; tokens are saved."""
    device = flows.start_device_flow(SCOPE)
    for line in device_instructions(device):
        echo(line)
    return flows.wait_for_device_tokens(device)


def parse_redirect(pasted: str) -> Redirect:
    """The code from a pasted redirect URL (or a bare code); an `error=` redirect becomes AuthorizationFailed."""
    text = pasted.strip()
    if not text:
        raise AuthorizationFailed("Nothing was pasted. Run `deletetags-bot cc-auth --code` again.")
    if "?" not in text and "=" not in text:
        return Redirect(text, None)
    query = urlsplit(text).query if "?" in text else text
    params = {k: v[0] for k, v in parse_qs(query).items()}
    if "error" in params:
        description = params.get("error_description", "")
        raise AuthorizationFailed(
            f"Constant Contact refused the authorisation ({params['error']}{': ' + description if description else ''}).")
    if not params.get("code"):
        raise AuthorizationFailed("The pasted address carries no `code`. Paste the whole address from the browser.")
    # A URL without our state is refused later (exchange_code compares it), as a forged one would be.
    return Redirect(params["code"], params.get("state", ""))


def run_code_flow(flows: OAuthFlows, redirect_uri: str, echo: Echo, ask: Ask) -> StoredTokens:
    """Authorisation code + PKCE: show the URL, take the redirect back, check state, exchange; tokens are saved."""
    request: PkceRequest = flows.authorization_request(redirect_uri, SCOPE)
    echo("Open this address in a browser and allow access:")
    echo(f"    {request.url}")
    echo(SIGN_IN_AS)
    echo(f"The browser then goes to {redirect_uri}… (the page may fail to load; that is fine).")
    redirect = parse_redirect(ask("Paste the whole address from the browser's address bar (or just the code)"))
    # A bare code carries no state to compare; a pasted URL must carry ours.
    state = request.state if redirect.state is None else redirect.state
    return flows.exchange_code(request, redirect.code, state)


def authorise(settings: Settings, echo: Echo, ask: Ask, *, use_code: bool = False,
              redirect_uri: str = DEFAULT_REDIRECT_URI) -> Path:
    """Run one flow and store the tokens in DELETETAGS_DB; returns the database path."""
    store = Store(settings.db_path)
    try:
        with flows_for(settings, store) as flows:
            if use_code:
                run_code_flow(flows, redirect_uri, echo, ask)
            else:
                run_device_flow(flows, echo)
    finally:
        store.close()
    return settings.db_path

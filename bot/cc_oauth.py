"""Constant Contact OAuth2: token records and storage, the shared refresher, device and PKCE flows.

The exceptions and records defined here are re-exported by `bot.constant_contact`; import them
from there. Nothing in this module logs or raises a token, a device code or the client secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_before_delay, wait_exponential_jitter

from bot.core.advice import CC_AUTH_HINT, CREDENTIALS_HINT

logger = logging.getLogger(__name__)

USER_AGENT = "deletetags-bot/0.1"
DEFAULT_SCOPE = "contact_data offline_access"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_ENDPOINT_INTERVAL = 1.05  # Constant Contact allows 1 token request per second; keep a margin
REFRESH_EARLY_SECONDS = 300.0


class ConstantContactError(Exception):
    """Base class of every error raised by the Constant Contact client."""


class ReauthorizationRequired(ConstantContactError):
    """No usable refresh token: a person must authorise the bot again."""


class AuthorizationFailed(ConstantContactError):
    """An interactive authorisation (device flow or PKCE) did not produce tokens."""


class ServiceUnavailable(ConstantContactError):
    """Constant Contact answered 5xx or could not be reached, even after retrying."""

    def __init__(self, message: str, host: str) -> None:
        super().__init__(message)
        self.host = host


@dataclass
class StoredTokens:
    """What the bot persists. Tokens are kept out of repr() so they never reach a log."""

    refresh_token: str = field(repr=False)
    access_token: str | None = field(default=None, repr=False)
    access_expires_at: float | None = None  # epoch seconds (the JWT's exp claim)


class TokenStore(Protocol):
    def load_tokens(self) -> StoredTokens | None: ...

    def save_tokens(self, tokens: StoredTokens) -> None: ...


class MemoryTokenStore:
    """Thread-safe in-memory TokenStore for tests and the demo."""

    def __init__(self, tokens: StoredTokens | None = None) -> None:
        self._lock = threading.Lock()
        self._tokens = replace(tokens) if tokens else None
        self.save_count = 0

    def load_tokens(self) -> StoredTokens | None:
        with self._lock:
            return replace(self._tokens) if self._tokens else None

    def save_tokens(self, tokens: StoredTokens) -> None:
        with self._lock:
            self._tokens = replace(tokens)
            self.save_count += 1


@dataclass(frozen=True)
class DeviceCode:
    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval: int
    expires_in: int


@dataclass(frozen=True)
class PkceRequest:
    """An authorisation URL to open in a browser plus what the code exchange needs later."""

    url: str
    redirect_uri: str
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)


def jwt_claims(token: str) -> dict[str, Any]:
    """Claims of a JWT without checking its signature; {} when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def access_expiry(access_token: str, expires_in: object, now: float) -> float | None:
    """Epoch seconds when the access token expires: the JWT exp claim, else expires_in."""
    exp = jwt_claims(access_token).get("exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return float(exp)
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
        # Constant Contact's generated clients call expires_in an epoch timestamp, OAuth says
        # "seconds from now"; a value past 2001-09-09 can only be the former.
        return float(expires_in) if expires_in > 1_000_000_000 else now + float(expires_in)
    return None


def tokens_from_response(body: Mapping[str, Any], previous_refresh: str | None, now: float) -> StoredTokens:
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise ConstantContactError("Constant Contact's token endpoint answered without an access token.")
    refresh = body.get("refresh_token") or previous_refresh
    if not isinstance(refresh, str) or not refresh:
        raise AuthorizationFailed(
            "Constant Contact returned no refresh token: the authorisation must request the "
            f"`offline_access` scope. {CC_AUTH_HINT}"
        )
    return StoredTokens(refresh, access, access_expiry(access, body.get("expires_in"), now))


@dataclass(frozen=True)
class TokenAnswer:
    """A token-endpoint answer: 200 with tokens, or an OAuth error such as invalid_grant."""

    status: int
    body: dict[str, Any]

    @property
    def error(self) -> str:
        return str(self.body.get("error") or "")

    def describe(self) -> str:
        description = str(self.body.get("error_description") or "").strip()
        return f"{self.error or f'HTTP {self.status}'}" + (f": {description}" if description else "")


class _Spacer:
    """At most one call per `interval` seconds; callers queue behind each other."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._next_at = 0.0

    def wait(self) -> None:
        with self._lock:
            delay = self._next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_at = time.monotonic() + self._interval


class _TryAgain(Exception):
    def __init__(self, final: ConstantContactError) -> None:
        super().__init__(str(final))
        self.final = final


class TokenEndpoint:
    """POSTs form-encoded grants to {auth_url}/token, spaced, retried on 429/5xx/network errors."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        auth_url: str,
        client_id: str,
        client_secret: str | None,
        max_retry_seconds: float = 20.0,
    ) -> None:
        self._http = http
        self.auth_url = auth_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._max_retry_seconds = max_retry_seconds
        self._spacer = _Spacer(TOKEN_ENDPOINT_INTERVAL)
        self.host = urlsplit(self.auth_url).netloc

    def request_tokens(self, form: Mapping[str, str]) -> TokenAnswer:
        retrying = Retrying(
            stop=stop_before_delay(self._max_retry_seconds),
            wait=wait_exponential_jitter(multiplier=0.5, max=4.0, jitter=0.5),
            retry=retry_if_exception_type(_TryAgain),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._post_once(form)
        except _TryAgain as exc:
            raise exc.final from None
        raise AssertionError("unreachable")  # pragma: no cover

    def client_auth(self, form: dict[str, str]) -> httpx.BasicAuth | None:
        """HTTP Basic for a confidential client; a public client (no secret) names itself in the form."""
        if self._client_secret:
            return httpx.BasicAuth(self.client_id, self._client_secret)
        form["client_id"] = self.client_id
        return None

    def _post_once(self, form: Mapping[str, str]) -> TokenAnswer:
        data = dict(form)
        auth = self.client_auth(data)
        self._spacer.wait()
        logger.info("Constant Contact token request (%s) to %s", _grant_name(data), self.host)
        try:
            response = self._http.post(f"{self.auth_url}/token", data=data, auth=auth)
        except httpx.TransportError as exc:
            logger.info("Constant Contact token endpoint %s unreachable (%s)", self.host, type(exc).__name__)
            raise _TryAgain(ServiceUnavailable(
                f"Could not reach Constant Contact's authorisation server {self.host} "
                f"({type(exc).__name__}). Check the network and CC_AUTH_URL, then try again.", self.host)) from None
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> TokenAnswer:
        body = _json_object(response)
        status = response.status_code
        if status == 429 or status >= 500:
            logger.info("Constant Contact token endpoint answered HTTP %d; will retry", status)
            raise _TryAgain(ServiceUnavailable(
                f"Constant Contact's authorisation server {self.host} answered HTTP {status} "
                "repeatedly. Try again in a few minutes.", self.host))
        return TokenAnswer(status, body)


def _grant_name(form: Mapping[str, str]) -> str:
    grant = form.get("grant_type", "?")
    return "device_code" if grant == DEVICE_GRANT else grant


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class TokenManager:
    """Hands out a valid access token; exactly one thread refreshes at a time.

    Refresh tokens rotate (each refresh invalidates the previous one), so the new pair is saved
    to the store before the new access token is handed to anyone.
    """

    def __init__(
        self,
        endpoint: TokenEndpoint,
        store: TokenStore,
        *,
        initial_refresh_token: str | None,
        clock: Callable[[], float],
    ) -> None:
        self._endpoint = endpoint
        self._store = store
        self._initial_refresh_token = initial_refresh_token
        self._clock = clock
        self._lock = threading.Lock()
        self._current: tuple[str, float | None] | None = None  # (access token, refresh at)
        self._dead_refresh_token: str | None = None
        self._unsaved_refresh_token: str | None = None

    def access_token(self) -> str:
        usable = self._usable()
        if usable:
            return usable
        with self._lock:
            usable = self._usable()  # another thread refreshed while this one waited
            if usable:
                return usable
            self._adopt(self._store.load_tokens())
            return self._usable() or self._refresh_locked()

    def access_token_after_rejection(self, rejected: str) -> str:
        """After a 401: refresh once, unless another thread already replaced the rejected token."""
        with self._lock:
            usable = self._usable()
            if usable and usable != rejected:
                return usable
            logger.info("Constant Contact rejected the access token (401); refreshing")
            return self._refresh_locked()

    def refresh_now(self) -> None:
        with self._lock:
            self._refresh_locked()

    def _usable(self) -> str | None:
        current = self._current
        if current is None:
            return None
        token, refresh_at = current
        return token if refresh_at is None or self._clock() < refresh_at else None

    def _adopt(self, tokens: StoredTokens | None) -> None:
        if tokens is None or not tokens.access_token:
            return
        expires_at = tokens.access_expires_at
        if expires_at is None:
            self._current = (tokens.access_token, None)
            return
        self._current = (tokens.access_token, expires_at - _refresh_lead(tokens.access_token, expires_at, self._clock()))

    def _refresh_locked(self) -> str:
        stored = self._store.load_tokens()
        refresh_token = self._unsaved_refresh_token or (stored.refresh_token if stored else self._initial_refresh_token)
        if not refresh_token:
            raise ReauthorizationRequired(f"No Constant Contact refresh token is stored. {CC_AUTH_HINT}")
        if refresh_token == self._dead_refresh_token:
            raise ReauthorizationRequired(
                f"Constant Contact no longer accepts the stored refresh token. {CC_AUTH_HINT}")
        answer = self._endpoint.request_tokens({"grant_type": "refresh_token", "refresh_token": refresh_token})
        tokens = self._tokens_from(answer, refresh_token)
        self._save_rotated(tokens)
        self._adopt(tokens)
        logger.info("Constant Contact access token refreshed (valid until %s)", _when(tokens.access_expires_at))
        assert tokens.access_token is not None
        return tokens.access_token

    def _save_rotated(self, tokens: StoredTokens) -> None:
        # The previous refresh token is dead now; if the store fails, keep the new one for the next try.
        try:
            self._store.save_tokens(tokens)
        except Exception as exc:
            self._unsaved_refresh_token = tokens.refresh_token
            logger.error("Could not save the rotated Constant Contact refresh token (%s)", type(exc).__name__)
            raise ConstantContactError(
                "Could not save the new Constant Contact refresh token to the database "
                f"({type(exc).__name__}); the request was not sent. It will be saved on the next attempt.") from exc
        self._unsaved_refresh_token = None

    def _tokens_from(self, answer: TokenAnswer, refresh_token: str) -> StoredTokens:
        if answer.status == 200:
            return tokens_from_response(answer.body, refresh_token, self._clock())
        if answer.error == "invalid_grant":
            self._dead_refresh_token = refresh_token
            logger.warning("Constant Contact refused the refresh token (invalid_grant)")
            raise ReauthorizationRequired(
                "Constant Contact refused the stored refresh token (invalid_grant: it was revoked, "
                f"expired, or already used). {CC_AUTH_HINT}")
        if answer.error in ("invalid_client", "unauthorized_client") or answer.status == 401:
            raise ReauthorizationRequired(
                f"Constant Contact refused the application's credentials ({answer.describe()}). {CREDENTIALS_HINT}")
        raise ConstantContactError(f"Refreshing the Constant Contact access token failed ({answer.describe()}).")


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _refresh_lead(access_token: str, expires_at: float, now: float) -> float:
    """How long before expiry to refresh: 5 minutes, or a tenth of a shorter lifetime."""
    issued_at = jwt_claims(access_token).get("iat")
    if isinstance(issued_at, (int, float)) and not isinstance(issued_at, bool) and issued_at < expires_at:
        lifetime = expires_at - issued_at
    else:
        lifetime = max(0.0, expires_at - now)
    return min(REFRESH_EARLY_SECONDS, lifetime / 10)


class OAuthFlows:
    """The interactive flows behind `deletetags-bot cc-auth`: device flow and PKCE."""

    def __init__(
        self,
        *,
        auth_url: str,
        client_id: str,
        client_secret: str | None,
        token_store: TokenStore,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = new_http_client(transport, timeout)
        self._endpoint = TokenEndpoint(self._http, auth_url=auth_url, client_id=client_id, client_secret=client_secret)
        self._store = token_store
        self._clock = clock
        self._sleep = sleep

    def start_device_flow(self, scope: str = DEFAULT_SCOPE) -> DeviceCode:
        url = f"{self._endpoint.auth_url}/device/authorize"
        form = {"client_id": self._endpoint.client_id, "scope": scope}
        try:
            response = self._http.post(url, data=form)
        except httpx.TransportError as exc:
            host = self._endpoint.host
            raise ServiceUnavailable(f"Could not reach Constant Contact's authorisation server {host} "
                                     f"({type(exc).__name__}).", host) from None
        body = _json_object(response)
        if response.status_code != 200 or not body.get("device_code"):
            answer = TokenAnswer(response.status_code, body)
            raise AuthorizationFailed(
                f"Constant Contact did not start the device flow ({answer.describe()}). Check CC_CLIENT_ID "
                "and that the application allows the device flow.")
        return _device_code(body)

    def wait_for_device_tokens(self, device: DeviceCode) -> StoredTokens:
        """Poll the token endpoint until the user approves; save and return the tokens."""
        deadline = self._clock() + device.expires_in
        interval = max(1, device.interval)
        form = {"grant_type": DEVICE_GRANT, "device_code": device.device_code}
        while self._clock() < deadline:
            self._sleep(interval)
            answer = self._endpoint.request_tokens(form)
            if answer.status == 200:
                return self._save(tokens_from_response(answer.body, None, self._clock()))
            if answer.error == "authorization_pending":
                continue
            if answer.error == "slow_down":
                interval += 5
                continue
            raise AuthorizationFailed(_device_failure(answer))
        raise AuthorizationFailed("The code expired before it was approved. Run `deletetags-bot cc-auth` again.")

    def authorization_request(self, redirect_uri: str, scope: str = DEFAULT_SCOPE) -> PkceRequest:
        verifier = secrets.token_urlsafe(64)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=")
        state = secrets.token_urlsafe(24)
        query = urlencode({
            "client_id": self._endpoint.client_id, "redirect_uri": redirect_uri, "response_type": "code",
            "scope": scope, "state": state, "code_challenge": challenge.decode("ascii"),
            "code_challenge_method": "S256",
        })
        return PkceRequest(f"{self._endpoint.auth_url}/authorize?{query}", redirect_uri, state, verifier)

    def exchange_code(self, request: PkceRequest, code: str, returned_state: str) -> StoredTokens:
        """Trade the authorisation code from the redirect for tokens; save and return them."""
        if not secrets.compare_digest(request.state.encode(), returned_state.encode()):
            raise AuthorizationFailed("The `state` in the redirect does not match; start the authorisation again.")
        answer = self._endpoint.request_tokens({
            "grant_type": "authorization_code", "code": code, "redirect_uri": request.redirect_uri,
            "code_verifier": request.code_verifier,
        })
        if answer.status != 200:
            raise AuthorizationFailed(
                f"Constant Contact refused the authorisation code ({answer.describe()}). Codes are single use "
                "and valid for 5 minutes: start the authorisation again.")
        return self._save(tokens_from_response(answer.body, None, self._clock()))

    def _save(self, tokens: StoredTokens) -> StoredTokens:
        self._store.save_tokens(tokens)
        logger.info("Constant Contact authorisation complete; tokens saved")
        return tokens

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OAuthFlows:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _device_code(body: Mapping[str, Any]) -> DeviceCode:
    return DeviceCode(
        device_code=str(body["device_code"]),
        user_code=str(body.get("user_code") or ""),
        verification_uri=str(body.get("verification_uri") or ""),
        verification_uri_complete=body.get("verification_uri_complete") or None,
        interval=int(body.get("interval") or 5),
        expires_in=int(body.get("expires_in") or 600),
    )


def _device_failure(answer: TokenAnswer) -> str:
    if answer.error == "expired_token":
        return "The code expired before it was approved. Run `deletetags-bot cc-auth` again."
    if answer.error == "access_denied":
        return "The authorisation was denied in the browser. Run `deletetags-bot cc-auth` again to retry."
    return f"Constant Contact refused the device authorisation ({answer.describe()})."


def new_http_client(transport: httpx.BaseTransport | None, timeout: float) -> httpx.Client:
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
    )

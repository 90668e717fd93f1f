"""Bearer tokens from an OAuth2 token endpoint, renewed before they expire, for providers whose tokens outlive no sync.

iSpring Learn (client credentials, 30-minute tokens, no refresh token) and Docebo (client credentials or password
grant) share this. The CDK's `Oauth2Authenticator` is built around refresh tokens: it cannot read a token answer
that is not JSON (iSpring answers XML unless told otherwise), renews only once a token has already expired, and
words a rejected client secret as "Refresh token was rejected ... Re-authenticate", which names no config field.

What this adds:
* one token request shape: a form POST of `grant_type`, `client_id`, `client_secret` plus any extra fields
  (`scope`, `username`, `password`, ...), with the provider's own headers (e.g. `Accept`);
* renewal ahead of expiry: at `expires_in` minus a safety margin (at most half the lifetime, so a very short-lived
  token is still used), thread-safe, and on demand through `refresh_and_set_access_token()`, which the CDK's
  HTTP client calls when a stream's error handler answers a 401 with REFRESH_TOKEN_THEN_RETRY (`refresh_on_401`);
* every token registered with `add_to_secrets`, so that it is masked in logs and traces;
* a rejected secret as a `config_error` naming the endpoint, the provider's message and the fields to check
  (`rejection_hint` lets a provider name them per OAuth error code);
* a token request as patient as any stream request (design.md §6): 408, 429, 5xx, timeouts and dropped
  connections are retried `MAX_RETRIES` times with the streams' backoff (`Retry-After`, else exponential with
  jitter, plus the CDK's extra second; an absurd `Retry-After` and `MAX_RETRY_TIME` end it early), then a
  `transient_error` naming the endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlsplit

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .http_policy import (
    CONNECT_TIMEOUT,
    MAX_RETRIES,
    MAX_RETRY_TIME,
    READ_TIMEOUT,
    ExponentialJitterBackoff,
    RetryAfterBackoff,
    retry_wait,
)

logger = logging.getLogger("airbyte")

# Renew this long before the token's announced expiry (clock skew, a request in flight when it expires).
EXPIRY_MARGIN_SECONDS = 60.0
# When the answer has no expires_in: assume one hour, the usual OAuth2 lifetime; a 401 renews it anyway.
DEFAULT_EXPIRES_IN = 3600


def _default_parse(response: requests.Response) -> Mapping[str, Any]:
    return response.json()


def _default_describe(response: requests.Response) -> Optional[str]:
    """RFC 6749 §5.2 `error` / `error_description`, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or None
    if isinstance(body, Mapping):
        parts = [str(body[key]) for key in ("error", "error_description", "message") if body.get(key)]
        if parts:
            return ": ".join(parts)
    return response.text[:200] or None


class OAuth2TokenAuthenticator(requests.auth.AuthBase):
    """Sets `Authorization: Bearer <token>` on each request, fetching and renewing the token as needed.

    `parse_token(response)` reads the token endpoint's successful answer into a mapping with `access_token` and
    `expires_in` (seconds); `describe_error(response)` reads its error body into a sentence. `credential_hint`
    is appended to a rejection, e.g. "Check provider.client_id and provider.client_secret."
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        provider_title: str,
        credential_hint: str,
        grant_type: str = "client_credentials",
        extra_body: Optional[Mapping[str, str]] = None,
        headers: Optional[Mapping[str, str]] = None,
        parse_token: Callable[[requests.Response], Mapping[str, Any]] = _default_parse,
        describe_error: Callable[[requests.Response], Optional[str]] = _default_describe,
        rejection_hint: Optional[Callable[[requests.Response], Optional[str]]] = None,
        expiry_margin: float = EXPIRY_MARGIN_SECONDS,
        default_expires_in: int = DEFAULT_EXPIRES_IN,
        max_retries: int = MAX_RETRIES,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
        session: Optional[requests.Session] = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Optional[Callable[[float], None]] = None,
    ) -> None:
        self.token_url = token_url
        self._body = {"grant_type": grant_type, "client_id": client_id, "client_secret": client_secret, **(extra_body or {})}
        self._headers = dict(headers or {})
        self._title = provider_title
        self._hint = credential_hint
        self._parse = parse_token
        self._describe = describe_error
        self._rejection_hint = rejection_hint
        self._margin = expiry_margin
        self._default_expires_in = default_expires_in
        # Retries after the first try, as a stream's error handler counts them; a provider's check lowers it.
        self.max_retries = max_retries
        self._backoffs = [RetryAfterBackoff(provider_title), ExponentialJitterBackoff()]
        self._timeout = timeout
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep  # None: time.sleep, looked up when called
        self._lock = threading.RLock()
        self._token: Optional[str] = None
        self._renew_at = 0.0
        self.tokens_fetched = 0  # how many token requests succeeded; for logs and tests

    # ---- what requests and the CDK call ---------------------------------------------------------------------------
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self.get_auth_header())
        return request

    def get_auth_header(self) -> Mapping[str, str]:
        # The CDK compares this with a rejected request's header to skip a refresh another stream already made.
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def access_token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._fetch()
            return self._token  # type: ignore[return-value]

    def refresh_and_set_access_token(self) -> None:
        """Fetch a new token now: the API rejected the current one before its announced expiry."""
        with self._lock:
            self._fetch()

    # ---- the token request ------------------------------------------------------------------------------------------
    def _fetch(self) -> None:
        response = self._post()
        try:
            answer = self._parse(response)
            token = answer.get("access_token") if isinstance(answer, Mapping) else None
        except Exception as error:  # any unreadable answer is the same failure for the user
            token, answer = None, None
            reason = f"{type(error).__name__}: {error}"
        else:
            reason = "no access_token in the answer"
        if not isinstance(token, str) or not token:
            message = f"{self._title} POST {self._path}: the token answer could not be read ({reason})."
            raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
        add_to_secrets(token)
        lifetime = self._lifetime(answer.get("expires_in"))  # type: ignore[union-attr]
        self._token = token
        # Renew `margin` before expiry, but never later than half-way for a short-lived token.
        self._renew_at = self._clock() + max(lifetime - self._margin, lifetime / 2)
        self.tokens_fetched += 1

    def _lifetime(self, value: Any) -> float:
        """`expires_in` in seconds; 0 is a token already expired (used once, renewed on the next call)."""
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            return float(self._default_expires_in)
        return seconds if seconds >= 0 else float(self._default_expires_in)

    @property
    def _path(self) -> str:
        return urlsplit(self.token_url).path or "/"

    def _post(self) -> requests.Response:
        where = f"{self._title} POST {self._path}"
        attempts = max(0, self.max_retries) + 1
        started = self._clock()
        for attempt in range(1, attempts + 1):
            try:
                response = self._session.post(self.token_url, data=self._body, headers=self._headers, timeout=self._timeout)
            except requests.exceptions.SSLError as error:
                message = f"{where}: TLS failed ({type(error).__name__}). Check provider.base_url."
                raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError) as error:
                kind = "did not answer in time" if isinstance(error, requests.exceptions.Timeout) else "could not be reached or dropped the connection"
                last_problem = f"{kind} ({type(error).__name__})"
                failed: requests.Response | Exception = error
            else:
                if response.ok:
                    return response
                self._raise_unless_retryable(where, response)
                said = self._safe_describe(response)
                last_problem = f"answered HTTP {response.status_code}{f': {said}' if said else ''}"
                failed = response
            if attempt == attempts:
                break
            # Retry-After (an absurd one is a transient error at once), else exponential with jitter: as for any request.
            wait = retry_wait(self._backoffs, failed, attempt) or 0.0
            if self._clock() - started + wait > MAX_RETRY_TIME.total_seconds():
                break
            # Like the CDK's line for a stream's retry: the endpoint and the wait, never the form (it holds the secret).
            logger.info(f"{where} {last_problem}; retrying in {wait:.1f} s (retry {attempt} of {attempts - 1}).")
            (self._sleep or time.sleep)(wait)
        message = f"{where} {last_problem}, {attempt} attempts; no access token. The sync will resume from its last state next time."
        raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.transient_error)

    def _raise_unless_retryable(self, where: str, response: requests.Response) -> None:
        """408, 429 and 5xx are worth another try; any other error answer is a config_error naming what to fix."""
        status = response.status_code
        if status in (408, 429) or status >= 500:
            return
        said = self._safe_describe(response)
        said = f": {said}" if said else ""
        if status in (400, 401, 403):
            # The token endpoint's 4xx is a rejected client or grant (RFC 6749 §5.2): retrying cannot help.
            hint = self._safe_hint(response) or self._hint
            message = f"{self._title} rejected the token request (POST {self._path} answered HTTP {status}{said}). {hint}"
        else:
            message = f"{where} answered HTTP {status}{said}. Check provider.base_url."
        raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error)

    def _safe_hint(self, response: requests.Response) -> Optional[str]:
        if self._rejection_hint is None:
            return None
        try:
            return self._rejection_hint(response)
        except Exception:  # an unreadable error body falls back to the general hint
            return None

    def _safe_describe(self, response: requests.Response) -> Optional[str]:
        try:
            text = self._describe(response)
        except Exception:  # an unreadable error body must not hide the status
            text = None
        return text[:300] if text else None

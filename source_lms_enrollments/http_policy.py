"""The one HTTP policy every provider's streams use, built on the CDK's error handler and backoff.

Where the CDK's defaults fall short of design.md §6 (cdk-notes.md §2), this module fills the gap:

* the CDK sets no request timeout: every request gets `CONNECT_TIMEOUT` and a read timeout;
* the CDK maps timeouts and dropped connections to `system_error`: here they are retried and end as
  `transient_error`;
* the CDK ignores `Retry-After`: `RetryAfterBackoff` honours it, and turns an absurd wait into a clear
  transient error instead of sleeping for hours;
* the CDK's messages name neither the LMS nor the endpoint: `LmsErrorHandler` names both (the path only, never
  a query string, which can carry a token) and, for 401/403, what the provider said and which field to fix;
* the CDK logs every wait a backoff strategy asks for as "Rate limit exceeded", a refused connection included:
  `CdkLogWording` says what happened instead (the error handler's message), and drops the CDK's
  "MemoryMonitor instantiated" line that opened every command.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Callable, Optional, Union
from urllib.parse import urlsplit

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, HttpStatusErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.default_error_mapping import DEFAULT_ERROR_MAPPING
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.streams.http.exceptions import UserDefinedBackoffException
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from requests.exceptions import ChunkedEncodingError, ConnectionError, ConnectTimeout, ReadTimeout, SSLError

# Connect and read timeouts, seconds. The read default is long: a TalentLMS /users answer on a large portal is one
# unpaged body. `request_timeout_seconds` in the config overrides the read timeout.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 120
MAX_RETRIES = 5
# Bound on the total time spent retrying one request (the CDK's own default is 600 s too).
MAX_RETRY_TIME = timedelta(minutes=10)
# The longest single wait a provider may ask for before we give up with a transient error instead.
MAX_SINGLE_WAIT_SECONDS = 600
# The CDK sleeps one second more than a backoff strategy asks for ("to cover any fractions of second").
CDK_EXTRA_WAIT_SECONDS = 1.0

_RETRY = ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, None)
# Exceptions are looked up by exact class (cdk-notes.md §2), so every subclass we can meet is listed.
LMS_ERROR_MAPPING = {
    **DEFAULT_ERROR_MAPPING,
    ConnectionError: _RETRY,
    ConnectTimeout: _RETRY,
    ReadTimeout: _RETRY,
    ChunkedEncodingError: _RETRY,
    SSLError: ErrorResolution(ResponseAction.FAIL, FailureType.config_error, None),
}


def endpoint_of(url: str | None) -> str:
    """The path of a URL, without scheme, host or query (a query can hold a token)."""
    return urlsplit(url).path if url else "?"


def _request_of(response_or_exception: Union[requests.Response, Exception, None]) -> requests.PreparedRequest | None:
    if isinstance(response_or_exception, requests.Response):
        return response_or_exception.request
    return getattr(response_or_exception, "request", None)


class LmsErrorHandler(HttpStatusErrorHandler):
    """The CDK's status/exception classification, with messages a person can act on.

    `describe_error(response)` is the provider's reading of its own error body (e.g. TalentLMS
    `{"error": {"message": ...}}`); `credential_hint` names the config fields to check on 401/403;
    `endpoint_name(url)` lets a provider whose path says nothing (Moodle's one `server.php`) name the call.
    """

    def __init__(
        self,
        logger: logging.Logger,
        provider_title: str,
        credential_hint: str,
        describe_error: Callable[[requests.Response], str | None],
        endpoint_name: Callable[[str | None], str] = endpoint_of,
        ignore_not_found: bool = False,
        refresh_on_401: bool = False,
        max_retries: int = MAX_RETRIES,
        provider_rule: Callable[[requests.Response], ErrorResolution | None] | None = None,
        max_time: timedelta = MAX_RETRY_TIME,
        on_ignored: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(logger, LMS_ERROR_MAPPING, max_retries=max_retries, max_time=max_time)
        self._title = provider_title
        self._credential_hint = credential_hint
        self._describe_error = describe_error
        self._endpoint_name = endpoint_name
        self._ignore_not_found = ignore_not_found
        self._refresh_on_401 = refresh_on_401
        self._provider_rule = provider_rule
        self._on_ignored = on_ignored  # told when an answer is skipped: the listing is then not complete

    def interpret_response(self, response_or_exception: Optional[Union[requests.Response, Exception]] = None) -> ErrorResolution:
        resolution = super().interpret_response(response_or_exception)
        if resolution.response_action == ResponseAction.SUCCESS:
            return resolution
        request = _request_of(response_or_exception)
        endpoint = self._endpoint_name(request.url if request is not None else None)
        where = f"{self._title} {request.method if request is not None else 'GET'} {endpoint}"

        if isinstance(response_or_exception, requests.Response):
            status = response_or_exception.status_code
            said = self._safe_describe(response_or_exception)
            said = f": {said}" if said else ""
            special = self._provider_rule(response_or_exception) if self._provider_rule else None
            if special is not None:
                # A provider's own meaning for a status (Canvas throttles with 403), checked before the shared rules.
                note = f" {special.error_message}" if special.error_message else ""
                return ErrorResolution(special.response_action, special.failure_type, f"{where} answered HTTP {status}{said}.{note}")
            if status == 401 and self._refresh_on_401:
                # An OAuth token that expired mid-sync: the CDK refreshes it once and retries; a second 401 after a
                # fresh token is a config_error (http_client.py, REFRESH_TOKEN_THEN_RETRY).
                return ErrorResolution(
                    ResponseAction.REFRESH_TOKEN_THEN_RETRY,
                    FailureType.config_error,
                    f"{where} answered HTTP 401{said}. {self._credential_hint}",
                )
            if status in (401, 403):
                return ErrorResolution(
                    ResponseAction.FAIL,
                    FailureType.config_error,
                    f"{where} answered HTTP {status}{said}. {self._credential_hint}",
                )
            if status == 404 and self._ignore_not_found:
                # A child resource deleted between listing its parent and reading it: not fatal (design.md §6).
                if self._on_ignored is not None:
                    self._on_ignored()
                return ErrorResolution(ResponseAction.IGNORE, None, f"{where} answered HTTP 404{said}; it was probably deleted during the sync, skipped.")
            if status == 429:
                return ErrorResolution(ResponseAction.RATE_LIMITED, FailureType.transient_error, f"{where} answered HTTP 429 (rate limited){said}.")
            if status >= 500 or status == 408:
                return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, f"{where} answered HTTP {status}{said}.")
            # Any other 4xx is a request this connector got wrong or the API changed: retrying will not help.
            return ErrorResolution(ResponseAction.FAIL, FailureType.system_error, f"{where} answered HTTP {status}{said}.")

        if isinstance(response_or_exception, SSLError):
            return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, f"{where}: TLS failed ({type(response_or_exception).__name__}). Check provider.base_url.")
        if isinstance(response_or_exception, (ConnectionError, ReadTimeout, ChunkedEncodingError)):
            kind = "did not answer in time" if isinstance(response_or_exception, (ReadTimeout, ConnectTimeout)) else "could not be reached or dropped the connection"
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, f"{where} {kind} ({type(response_or_exception).__name__}).")
        return ErrorResolution(resolution.response_action, resolution.failure_type, f"{where}: {resolution.error_message}")

    def _safe_describe(self, response: requests.Response) -> str | None:
        try:
            text = self._describe_error(response)
        except Exception:  # an error body we cannot read must not hide the status itself
            text = None
        return text[:300] if text else None


class RetryAfterBackoff(BackoffStrategy):
    """Wait what `Retry-After` says (seconds or an HTTP date); None lets the CDK's exponential backoff decide.

    The CDK adds 1 s to any value returned here (cdk-notes.md §2).
    """

    def __init__(self, provider_title: str, max_wait: float = MAX_SINGLE_WAIT_SECONDS) -> None:
        self._title = provider_title
        self._max_wait = max_wait

    def backoff_time(self, response_or_exception, attempt_count: int) -> Optional[float]:  # noqa: ANN001 (CDK signature)
        if not isinstance(response_or_exception, requests.Response):
            return None
        wait = self.wait_seconds(response_or_exception)
        if wait is None:
            return None
        if wait > self._max_wait:
            raise AirbyteTracedException(
                message=(
                    f"{self._title} asks to wait {wait:.0f} s before the next request to "
                    f"{endpoint_of(response_or_exception.url)}, longer than the {self._max_wait:.0f} s this connector waits. "
                    "The sync will resume from its last state next time."
                ),
                failure_type=FailureType.transient_error,
            )
        return max(wait, 0.0)

    @staticmethod
    def wait_seconds(response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After", "").strip()
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None


class ExponentialJitterBackoff(BackoffStrategy):
    """Exponential backoff with jitter, for retries the provider gave no wait for.

    The CDK's own fallback is exponential without jitter (1, 2, 4, 8, 16 s), so parallel clients retry in step;
    here each wait is drawn from [½, 1] × 2^(attempt-1) s (the CDK adds 1 s to any value returned).
    """

    def __init__(self, cap_seconds: float = 60.0) -> None:
        self._cap = cap_seconds

    def backoff_time(self, response_or_exception, attempt_count: int) -> Optional[float]:  # noqa: ANN001 (CDK signature)
        ceiling = min(self._cap, 2.0 ** max(attempt_count - 1, 0))
        return random.uniform(ceiling / 2, ceiling)


class RateLimitResetBackoff(RetryAfterBackoff):
    """On a 429 without `Retry-After`, wait until the window named by the provider's reset header ends.

    `header` holds either seconds until the reset (`epoch=False`, e.g. Truto's `ratelimit-reset`) or the reset
    instant in Unix seconds (`epoch=True`, e.g. `X-RateLimit-Reset`). Other answers fall through (None).
    """

    def __init__(self, provider_title: str, header: str, epoch: bool, max_wait: float = MAX_SINGLE_WAIT_SECONDS) -> None:
        super().__init__(provider_title, max_wait)
        self._header = header
        self._epoch = epoch

    def wait_seconds(self, response: requests.Response) -> float | None:  # type: ignore[override]
        if response.status_code != 429:
            return None
        try:
            value = float(response.headers.get(self._header, "").strip())
        except ValueError:
            return None
        return value - time.time() if self._epoch else value


def retry_wait(strategies: list[BackoffStrategy], response_or_exception: Union[requests.Response, Exception], attempt_count: int) -> float | None:
    """The wait before the next try of a request that is not a stream's (an OAuth token request), computed as the CDK's
    HTTP client does for a stream's: the first strategy with a non-zero answer, plus the CDK's extra second. None when
    no strategy answers."""
    for strategy in strategies:
        wait = strategy.backoff_time(response_or_exception, attempt_count)
        if wait:
            return wait + CDK_EXTRA_WAIT_SECONDS
    return None


class CdkLogWording(logging.Filter):
    """On the CDK's `airbyte` logger: its retry lines say what happened; its MemoryMonitor start-up line goes.

    `user_defined_backoff_handler` (rate_limiting.py) logs "Rate limit exceeded ... Retrying in N seconds." for any
    retry whose wait a backoff strategy computed, a refused connection or a 5xx as much as a 429. It logs from inside
    the `except` of the retried call, so the exception at hand carries `LmsErrorHandler`'s own message.
    """

    CDK_RETRY = "UserDefinedBackoffException: Rate limit exceeded"
    # Said again by the error that follows them (with the handler's message; the CDK's dump of the request and
    # response, headers included, stays in the trace's internal_message), the second with a stack trace.
    CDK_DROPPED = ("MemoryMonitor instantiated", "Max retry limit reached", "Retries exhausted with backoff exception",
                   "During the sync, the following streams did not sync successfully")
    CDK_STREAM_FAILED = "Encountered an exception while reading stream"
    CDK_FAIL_DUMP = re.compile(r"'[A-Z]+' request to '.*' failed with (status code|exception)", re.DOTALL)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        if message.startswith(self.CDK_DROPPED) or self.CDK_FAIL_DUMP.match(message):
            return False
        if message.startswith(self.CDK_STREAM_FAILED):
            record.exc_info, record.exc_text = None, None  # the stream's TRACE error carries the stack trace
            return True
        if message.startswith(self.CDK_RETRY):
            error = sys.exc_info()[1]
            if isinstance(error, UserDefinedBackoffException):
                what = (str(error).strip() or "The request failed").rstrip(".")
                try:
                    wait = f" in {float(message.rsplit('Retrying in ', 1)[1].split()[0]):.1f} s"
                except (IndexError, ValueError):
                    wait = ""
                record.msg, record.args = f"{what}. Retrying{wait}.", ()
        return True


def install_cdk_log_wording() -> None:
    """On the `airbyte` logger (records logged on it) and on the root logger's handlers, where the CDK's
    `init_logger` puts its one console handler (records of `airbyte.streams.<name>` and other child loggers)."""
    for filterer in (logging.getLogger("airbyte"), *logging.getLogger().handlers):
        if not any(isinstance(existing, CdkLogWording) for existing in filterer.filters):
            filterer.addFilter(CdkLogWording())


install_cdk_log_wording()

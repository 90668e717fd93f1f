"""What every provider shares: its config, its place in the spec, and the base stream with cursor and state.

A provider is one `LmsProvider` subclass (spec entry, auth, check, its three streams) plus its `LmsStream`
subclasses. Everything here is provider-neutral; a provider overrides only what differs.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from abc import ABC, abstractmethod
import queue
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, MutableMapping, Optional
from urllib.parse import parse_qs, urlsplit

import orjson
import requests
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets
from requests.auth import AuthBase
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.core import CheckpointMixin
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from datetime import timedelta

from airbyte_cdk.sources.streams.call_rate import APIBudget, MovingWindowCallRatePolicy, Rate

from .http_policy import (
    CONNECT_TIMEOUT,
    MAX_RETRIES,
    READ_TIMEOUT,
    ExponentialJitterBackoff,
    LmsErrorHandler,
    RetryAfterBackoff,
    endpoint_of,
)
from .deletions import STATE_KEY as LISTED_IDS, ListedIds, StateFormatError
from .unified import epoch_to_iso, iso_to_iso, now_iso

logger = logging.getLogger("airbyte")
SCHEMAS = Path(__file__).parent / "schemas"  # the unified streams' JSON schemas

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
# requests keeps 10 connections per host on an http:// adapter (cdk-notes.md §2): more threads than that would
# open and discard connections, so the fan-out stops there.
MAX_CONCURRENCY = 10
# A fan-out partition hands its records to the reading thread in chunks of this many, at most this many chunks
# ahead: small enough to bound memory, large enough that the queue costs nothing per record.
CHUNK_RECORDS = 100
CHUNKS_BUFFERED = 4
# A stream that filters on the server lists everything once in this many days to find deletions (design.md §5a).
DELETION_SWEEP_DAYS = 7


def config_error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error)


def parsed_once(response: requests.Response, parse: Callable[[requests.Response], Any]) -> Any:
    """`parse(response)`, computed once per answer and kept on it: `parse_response` and `next_page_token` both need
    the body, and in a fan-out they run on different threads (the reading thread and a pool thread)."""
    page = getattr(response, "_lms_parsed", None)
    if page is None:
        page = parse(response)
        response._lms_parsed = page  # type: ignore[attr-defined]
    return page


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_base_url(value: Any, field: str = "provider.base_url") -> str:
    """A base URL with its scheme, https unless the host is loopback (design.md §2), without a trailing slash."""
    if not isinstance(value, str) or not value.strip():
        raise config_error(f"{field} is required: the full URL of the LMS, e.g. https://acme.example.com.")
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise config_error(f"{field} must be a full URL with http(s) scheme and host, e.g. https://acme.example.com.")
    if parts.username or parts.password:
        raise config_error(f"{field} must not carry credentials; put them in their own fields.")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise config_error(
            f"{field} uses plain http; https is required except for loopback hosts "
            "(localhost, 127.0.0.0/8, [::1])."
        )
    return url


class LmsConfig:
    """The validated connector config (design.md §3), shared by every provider."""

    def __init__(self, config: Mapping[str, Any], provider_cls: type["LmsProvider"]) -> None:
        provider = config.get("provider")
        if not isinstance(provider, Mapping):
            raise config_error("provider is required: an object with provider_type and the provider's fields.")
        self.provider: Mapping[str, Any] = provider
        for field in provider_cls.spec_required:
            value = provider.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise config_error(f"provider.{field} is required for {provider_cls.title}.")
        self.base_url = checked_base_url(provider.get("base_url") or provider_cls.default_base_url)
        start_date = config.get("start_date")
        try:
            self.start_date: str | None = iso_to_iso(start_date) if start_date else None
        except (ValueError, TypeError):
            raise config_error("start_date must be an ISO 8601 date-time in UTC, e.g. 2024-01-01T00:00:00Z (or a date, 2024-01-01).") from None
        self.include_remote_data = bool(config.get("include_remote_data", False))
        self.requests_per_minute = _positive_int(config, "requests_per_minute", None)
        self.read_timeout = _positive_int(config, "request_timeout_seconds", READ_TIMEOUT)
        self.max_concurrency = _positive_int(config, "max_concurrency", None)
        if self.max_concurrency is not None and self.max_concurrency > MAX_CONCURRENCY:
            raise config_error(f"max_concurrency must be at most {MAX_CONCURRENCY}.")
        sweep = config.get("deletion_sweep_days", DELETION_SWEEP_DAYS)
        if isinstance(sweep, bool) or not isinstance(sweep, int) or sweep < 0:
            raise config_error("deletion_sweep_days must be a whole number of days, 0 or more (0: every sync).")
        self.deletion_sweep_days: int = sweep


def _positive_int(config: Mapping[str, Any], field: str, default: int | None) -> int | None:
    value = config.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise config_error(f"{field} must be a whole number of at least 1.")
    return value


class HeaderAuth(AuthBase):
    """Fixed headers on every request (an API key as a Bearer token beside an account or connection header, as the
    hosted unified APIs want), with the secrets among them registered for masking outside the entrypoint too."""

    def __init__(self, headers: Mapping[str, str], secrets: Iterable[str]) -> None:
        self._headers = dict(headers)
        for secret in secrets:
            add_to_secrets(secret)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request


def request_budget(per_minute: int | None, per_second: int | None) -> APIBudget | None:
    """A moving-window budget for the user's per-minute cap and the provider's per-second limit, or None.

    The per-second limit becomes an even spacing, one request every 1/n s: a burst of n at the start of each second
    lands, with network and thread jitter, partly in the provider's next window (ran: bursts of 8 a second met a 429
    from a 10/s limit under load). pyrate_limiter, under the CDK's policy, wants rates ascending in interval and in
    limit and not ascending in rate, so a cap that another one already implies is left out.
    """
    spacing = Rate(1, timedelta(seconds=1 / per_second)) if per_second else None
    minute = Rate(per_minute, timedelta(minutes=1)) if per_minute else None
    if spacing and minute:
        if per_minute <= 1:
            rates = [minute]
        elif per_minute >= 60 * per_second:
            rates = [spacing]
        else:
            rates = [spacing, minute]
    else:
        rates = [rate for rate in (spacing, minute) if rate]
    if not rates:
        return None
    return APIBudget(policies=[MovingWindowCallRatePolicy(rates=rates, matchers=[])])


class LmsProvider(ABC):
    """One LMS: its entry in the spec's `provider` oneOf, its auth, its check, its three streams."""

    provider_type: ClassVar[str]
    title: ClassVar[str]
    # JSON schema of the provider object's own fields (besides provider_type and base_url).
    spec_properties: ClassVar[dict[str, Any]]
    spec_required: ClassVar[list[str]]
    default_base_url: ClassVar[Optional[str]] = None
    base_url_example: ClassVar[str] = "https://acme.example.com"
    # Named in a 401/403 message: which config fields to check.
    credential_hint: ClassVar[str] = "Check the provider's credentials."
    # Parent items (courses) read at once by a fan-out stream unless the config says `max_concurrency`; a provider
    # with a tight rate limit lowers it.
    default_concurrency: ClassVar[int] = 4
    # Requests per second the connector keeps under, for a provider that documents a per-second limit and answers
    # 429 above it (e.g. Northpass, 10/s): pacing is cheaper than a 429 and its backoff.
    max_requests_per_second: ClassVar[Optional[int]] = None

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = LmsConfig(config, type(self))
        self.authenticator = self.make_authenticator()
        # One budget per provider, shared by all its streams and threads.
        self.api_budget = request_budget(self.config.requests_per_minute, self.max_requests_per_second)

    @classmethod
    def spec_entry(cls) -> dict[str, Any]:
        base_url: dict[str, Any] = {
            "type": "string",
            "title": "Base URL",
            "description": f"Full URL with scheme, e.g. {cls.base_url_example}. https is required except for loopback hosts.",
            "order": 1,
        }
        required = ["provider_type", *cls.spec_required]
        if cls.default_base_url:
            base_url["default"] = cls.default_base_url
        else:
            required.insert(1, "base_url")
        return {
            "title": cls.title,
            "type": "object",
            "required": required,
            "properties": {
                "provider_type": {"type": "string", "const": cls.provider_type, "default": cls.provider_type, "order": 0},
                "base_url": base_url,
                **cls.spec_properties,
            },
        }

    def make_authenticator(self) -> Any:
        return None

    @abstractmethod
    def streams(self) -> list["LmsStream"]:
        """The users, courses and course_enrollments streams."""

    @abstractmethod
    def check_stream(self) -> "LmsStream":
        """A stream whose first page is a cheap authenticated call, built with few retries."""

    def check(self) -> None:
        """Read the first record of `check_stream()`; every failure becomes a config error a person can act on.

        A short 429 burst is ridden out: the check stream retries once (its provider builds it so), and a rate limit
        that outlasts that is tried again, waiting what `Retry-After` says, up to `CHECK_RATE_LIMIT_ATTEMPTS`
        times and `CHECK_RATE_LIMIT_WAIT_SECONDS` in all.
        """
        deadline = time.monotonic() + CHECK_RATE_LIMIT_WAIT_SECONDS
        for attempt in range(1, CHECK_RATE_LIMIT_ATTEMPTS + 1):
            try:
                for _ in self.check_stream().records_of_slice(SyncMode.full_refresh, {}):
                    break
                return
            except AirbyteTracedException as error:
                if error.failure_type == FailureType.config_error:
                    raise
                said = _what_happened(error)
                response = getattr(error.__context__, "response", None)  # the CDK raises it from its backoff exception
                if not (isinstance(response, requests.Response) and response.status_code == 429):
                    raise config_error(
                        f"Could not read from {self.title}: {said} Check provider.base_url and that the LMS is reachable."
                    ) from error
                wait = RetryAfterBackoff.wait_seconds(response)
                wait = max(wait if wait is not None else 2.0**attempt, 0.0)
                if attempt == CHECK_RATE_LIMIT_ATTEMPTS or time.monotonic() + wait > deadline:
                    raise config_error(
                        f"{self.title} kept answering HTTP 429 (rate limited) for {attempt} attempts: the LMS was reached "
                        "and the credentials were not rejected, but its rate limit is used up (by this or another "
                        "integration). Try again later, or set requests_per_minute to leave room."
                    ) from error
                logger.info(f"{self.title} is rate limiting (HTTP 429); check waits {wait:.0f} s and tries again.")
                time.sleep(wait)


# `check` waits out a rate limit this many attempts and this long in all, then says it is a rate limit.
CHECK_RATE_LIMIT_ATTEMPTS = 4
CHECK_RATE_LIMIT_WAIT_SECONDS = 60
_CDK_EXHAUSTED = "Exhausted available request attempts. Please see logs for more details. Exception: "


def _what_happened(error: AirbyteTracedException) -> str:
    """The error handler's own message, without the CDK's "Exhausted available request attempts" wrapper."""
    message = error.message or str(error)
    message = message[len(_CDK_EXHAUSTED):] if message.startswith(_CDK_EXHAUSTED) else message
    return message.rstrip(".") + "."


LAST_SLICE = "is_last_slice"
FAN_OUT = "fan_out"
NO_PARTITIONS = "no_partitions"  # a fan-out with no parent items at all: read nothing, but finish the listing
# State keys besides the cursor (design.md §5a): ids the provider lists as deleted without saying when, with the
# time this connector first saw them so; and when a server-filtered stream last listed everything.
MARKED_DELETED = "marked_deleted"
SWEPT_AT = "swept_at"
# Airbyte's CDC deletion column: set on a tombstone only. A mapped record that carries it is the provider's own
# tombstone (see `read_records`).
CDC_DELETED_AT = "_ab_cdc_deleted_at"


class LmsStream(HttpStream, CheckpointMixin, ABC):
    """A unified stream of one provider: HTTP policy, JSON parsing with clear errors, cursor and state.

    Incremental (design.md §5): records with `updated_at >= cursor`, or a null `updated_at`, are emitted. When a
    provider cannot filter on the server (`server_side_filter = False`), everything is read and filtered here.
    The cursor moves only after the last slice is read, to the latest `updated_at` emitted, so that a state
    message is never ahead of a record not yet emitted, whatever order records arrive in.

    Deletions (design.md §5a, `deletions.py`): an incremental read whose listing is complete compares the ids it
    lists with those of the last complete listing, kept in the state; an id gone since is emitted once more as a
    tombstone after the last slice, before the state moves. A listed id the last listing did not hold (new, or
    back after a deletion) is emitted whatever its `updated_at`, so that a row a tombstone removed comes back.
    A stream that filters on the server lists everything every `deletion_sweep_days` (a sweep) to compare.
    A provider adds only its own signal: `marked_deleted(record)` for a record it lists as deleted, and
    `remote_deleted_at` set by its mapper where it says when.
    """

    unified_name: ClassVar[str]
    primary_key = "id"
    cursor_field = "updated_at"
    # True for a child stream whose parent item can vanish mid-sync (404 is then a warning, not a failure).
    ignore_not_found: ClassVar[bool] = False
    # True for OAuth providers: a 401 refreshes the token once and retries (the token can expire mid-sync).
    refresh_on_401: ClassVar[bool] = False
    # For providers whose `updated_at` is written by a background process while we page (a hosted copy that
    # re-syncs): the cursor never passes this many seconds before the read began, so a record rewritten behind
    # the read, after its old version was emitted, comes again next sync. None: no ceiling.
    cursor_lag_seconds: ClassVar[Optional[int]] = None
    # True when the stream sends the API's modified-since filter (`since_on_server`): its incremental listing is
    # then partial, and deletions show only in a sweep (a full listing every `deletion_sweep_days`).
    server_side_filter: ClassVar[bool] = False
    # True for an enrollment stream whose id is "{user_id}:{course_id}": its tombstones carry user.id and course.id.
    pair_id: ClassVar[bool] = False

    def __init__(self, provider: LmsProvider, max_retries: int = MAX_RETRIES) -> None:
        self.provider = provider
        self.config = provider.config
        self._max_retries = max_retries
        self._state_cursor: str | None = None  # the incoming state, what we filter on
        self._cursor: str | None = None  # what the state getter reports; only ever moves after a complete read
        self._pending: str | None = None  # the latest updated_at emitted in slices not yet all read
        self._read_started: float | None = None  # when the current read began (for `cursor_lag_seconds`)
        self._listed = ListedIds(None)  # the ids of the last complete listing, and this read's bookkeeping
        self._marked: dict[str, str | None] = {}  # listed as deleted without a time: id -> when first seen so
        self._marked_now: dict[str, str | None] = {}
        self._swept_at: str | None = None
        self._sweeping = False
        self._cut_short: str | None = None  # why this read's listing is not complete (a skipped answer)
        self._tombstone_template: dict[str, Any] | None = None
        super().__init__(authenticator=provider.authenticator, api_budget=provider.api_budget)

    # ---- identity and HTTP policy -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.unified_name

    @property
    def url_base(self) -> str:
        return self.provider.api_base  # type: ignore[attr-defined]

    def request_kwargs(self, **_: Any) -> Mapping[str, Any]:
        return {"timeout": (CONNECT_TIMEOUT, self.config.read_timeout)}  # the CDK sets none (cdk-notes.md §2)

    def get_error_handler(self) -> LmsErrorHandler:
        return LmsErrorHandler(
            self.logger,
            self.provider.title,
            self.provider.credential_hint,
            self.describe_error,
            endpoint_name=self.endpoint_name,
            ignore_not_found=self.ignore_not_found,
            refresh_on_401=self.refresh_on_401,
            provider_rule=self.provider_error_rule,
            max_retries=self._max_retries,
            on_ignored=lambda: self.listing_cut_short("an answer was skipped (HTTP 404: an item deleted during the sync)"),
        )

    def get_backoff_strategy(self) -> list[Any]:
        # Retry-After when the provider says how long, then the provider's own rate-limit headers; otherwise
        # exponential with jitter.
        return [RetryAfterBackoff(self.provider.title), *self.provider_backoffs(), ExponentialJitterBackoff()]

    def provider_backoffs(self) -> list[Any]:
        """Backoff strategies for the provider's own rate-limit headers, tried after Retry-After."""
        return []

    def provider_error_rule(self, response: requests.Response) -> ErrorResolution | None:
        """A provider-specific classification of an error answer, checked before the shared status rules; None = shared."""
        return None

    def describe_error(self, response: requests.Response) -> str | None:
        """The provider's message from an error body; providers override for their envelope."""
        return response.text[:200] if response.text else None

    def endpoint_name(self, url: str | None) -> str:
        return endpoint_of(url)

    def json_of(self, response: requests.Response) -> Any:
        """The body as JSON, or a system_error naming the endpoint and what was wrong."""
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as error:
            raise self.malformed(response, f"the answer is not valid JSON ({error})") from None

    def records_of(self, response: requests.Response) -> list[Mapping[str, Any]]:
        """The raw items of one answer: each paging family (or provider) says where they are."""
        raise NotImplementedError

    def mapped(self, response: requests.Response, mapper: Callable[[Mapping[str, Any]], Any], items: Optional[Iterable[Mapping[str, Any]]] = None) -> Iterator[Any]:
        """The answer's items (`records_of`, unless given) through `mapper`, None results left out; a value the mapper
        cannot read ends the sync naming the endpoint, rather than being nulled."""
        for item in self.records_of(response) if items is None else items:
            try:
                record = mapper(item)
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                raise self.malformed(response, f"record {item.get('id')!r} could not be read ({error})") from None
            if record is not None:
                yield record

    def malformed(self, response: requests.Response, what: str) -> AirbyteTracedException:
        message = f"{self.provider.title} GET {self.endpoint_name(response.url)}: {what}."
        return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)

    # ---- state ----------------------------------------------------------------------------------------------
    @property
    def state(self) -> MutableMapping[str, Any]:
        state: dict[str, Any] = {self.cursor_field: self._cursor} if self._cursor else {}
        if self._listed.encoded is not None:
            state[LISTED_IDS] = self._listed.encoded  # encoded once per complete listing, not per state message
        if self._marked:
            state[MARKED_DELETED] = self._marked
        if self._swept_at:
            state[SWEPT_AT] = self._swept_at
        return state

    @state.setter
    def state(self, value: Mapping[str, Any]) -> None:
        cursor = self._parse_state(value)
        self._state_cursor = self._cursor = cursor
        self._pending = None
        value = value or {}
        # A state written before deletions were tracked has no listed ids: nothing is known, nothing is gone.
        try:
            self._listed = ListedIds.from_state(value.get(LISTED_IDS))
        except StateFormatError as error:
            raise config_error(f"The state of stream {self.name!r} has a {LISTED_IDS} entry that cannot be read: {error}. Reset the stream or fix the state.") from None
        marked = value.get(MARKED_DELETED) or {}
        if not isinstance(marked, Mapping) or not all(v is None or isinstance(v, str) for v in marked.values()):
            raise config_error(f"The state of stream {self.name!r} has a {MARKED_DELETED} entry that is not an object of id -> timestamp or null.")
        self._marked = dict(marked)
        swept_at = value.get(SWEPT_AT)
        if swept_at is not None and not isinstance(swept_at, str):
            raise config_error(f"The state of stream {self.name!r} has {SWEPT_AT}={swept_at!r}, which is not a timestamp.")
        self._swept_at = swept_at

    def _parse_state(self, value: Any) -> str | None:
        if not value:
            return None
        if not isinstance(value, Mapping):
            raise config_error(f"The state of stream {self.name!r} must be an object like {{\"updated_at\": \"2024-01-01T00:00:00Z\"}}, got {value!r}.")
        raw = value.get(self.cursor_field)
        if raw is None:
            return None
        try:
            cursor = iso_to_iso(raw) if isinstance(raw, str) else None
        except ValueError:
            cursor = None
        if cursor is None:
            raise config_error(
                f"The state of stream {self.name!r} has {self.cursor_field}={raw!r}, which is not an ISO 8601 timestamp. "
                "Reset the stream or fix the state."
            )
        if cursor > now_iso():
            # A cursor in the future would hide every record changed until then: read as a first sync instead.
            logger.warning(f"The state of stream {self.name!r} has {self.cursor_field}={cursor}, in the future; ignoring it and reading as a first sync.")
            return None
        return cursor

    def since(self, sync_mode: SyncMode) -> str | None:
        """The lower bound records are filtered on: the state, or start_date on a first incremental sync."""
        if sync_mode != SyncMode.incremental:
            return None
        return self._state_cursor or self.config.start_date

    def since_on_server(self, sync_mode: SyncMode) -> str | None:
        """The lower bound to send as the API's modified-since filter: `since`, except in a sweep (everything is
        listed, so that deletions show; the cursor still filters here)."""
        if not self.server_side_filter or self._sweeping:
            return None
        return self.since(sync_mode)

    def _sweep_due(self) -> bool:
        if self._swept_at is None:
            return True
        days = self.config.deletion_sweep_days
        return days == 0 or self._swept_at <= (epoch_to_iso(time.time() - days * 86400) or "")

    # ---- deletions (design.md §5a) --------------------------------------------------------------------------
    def listing_cut_short(self, reason: str) -> None:
        """This read's listing misses something (a parent answered 404, a call was skipped): no deletion is
        inferred from it. Providers call it where they skip an answer themselves."""
        if self._cut_short is None:
            self._cut_short = reason

    def marked_deleted(self, record: Mapping[str, Any]) -> bool:
        """Whether the provider lists this record as deleted (a user whose status is deleted, by default)."""
        return record.get("status") == "deleted"

    def _listing_complete(self, sync_mode: SyncMode) -> bool:
        if self._cut_short is not None:
            return False
        return not self.server_side_filter or self.since_on_server(sync_mode) is None  # None in full refresh

    def tombstone(self, record_id: str, deleted_at: str) -> dict[str, Any]:
        """The record that tells the destination `record_id` is gone: every field null but the id, the deletion
        time (`remote_deleted_at`, `updated_at` and Airbyte's `_ab_cdc_deleted_at`) and what the id itself says."""
        if self._tombstone_template is None:
            schema = orjson.loads((SCHEMAS / f"{self.name}.json").read_bytes())
            self._tombstone_template = {name: None for name in schema["properties"]}
        record = dict(self._tombstone_template)
        record.update(id=record_id, remote_deleted_at=deleted_at, updated_at=deleted_at, _ab_cdc_deleted_at=deleted_at)
        if self.pair_id:
            user_id, _, course_id = record_id.partition(":")
            record["user"] = {"id": user_id, "name": None, "emails": None}
            record["course"] = {"id": course_id, "title": None}
        return record

    def _finish_listing(self, sync_mode: SyncMode) -> Iterator[Mapping[str, Any]]:
        """After the last slice of an incremental read: the tombstones a complete listing shows, then what the state
        remembers moves on (a read killed before this point keeps the old ids: the next one compares again)."""
        listed = self._listed
        complete = self._listing_complete(sync_mode)
        # Full refresh emits live records only, but what it listed is what the destination now holds: the next
        # incremental sync compares with it (a deletion between the two is then still reported).
        if complete and listed.known is not None and sync_mode == SyncMode.incremental:
            gone = listed.gone()
            if gone:
                when = now_iso()
                logger.info(f"Stream {self.name}: {len(gone)} record(s) listed last time are gone; emitting them as deleted.")
                for record_id in gone:
                    yield self.tombstone(record_id, when)
        elif self._cut_short is not None:
            logger.info(f"Stream {self.name}: deletions not checked this sync: {self._cut_short}.")
        listed.commit(complete)
        if complete:
            self._marked = self._marked_now
            if self.server_side_filter:
                self._swept_at = now_iso()
        else:
            self._marked.update(self._marked_now)
        self._marked_now = {}

    # ---- slices and records ---------------------------------------------------------------------------------
    def partitions(self) -> Iterable[dict[str, Any]]:
        """The stream's slices; one by default. A fan-out stream yields one per parent item."""
        yield {}

    @property
    def concurrency(self) -> int:
        """How many partitions are read at once: 1 for a stream without fan-out."""
        if type(self).partitions is LmsStream.partitions:
            return 1
        return self.config.max_concurrency or self.provider.default_concurrency

    def stream_slices(self, *, sync_mode: SyncMode, cursor_field: Optional[list[str]] = None, stream_state: Optional[Mapping[str, Any]] = None) -> Iterable[Optional[Mapping[str, Any]]]:
        self._read_started = time.time()
        # A new read: nothing listed yet, nothing cut short; a server-filtered stream sweeps when one is due.
        self._listed.start()
        self._marked_now = {}
        self._cut_short = None
        self._sweeping = sync_mode == SyncMode.incremental and self.server_side_filter and self._sweep_due()
        if self.concurrency > 1:
            # One slice for the whole fan-out, read by a bounded pool (`_read_fan_out`); its end commits the cursor.
            yield {FAN_OUT: True, LAST_SLICE: True}
            return
        # One-item lookahead marks the last slice, whose end commits the cursor (cdk-notes.md §1).
        previous = None
        for item in self.partitions():
            if previous is not None:
                yield previous
            previous = item
        if previous is None:
            # No parents at all: one empty slice still ends the read, so that the listing (empty) is finished.
            yield {NO_PARTITIONS: True, LAST_SLICE: True}
            return
        yield {**previous, LAST_SLICE: True}

    def read_records(self, sync_mode: SyncMode, cursor_field: Optional[list[str]] = None, stream_slice: Optional[Mapping[str, Any]] = None, stream_state: Optional[Mapping[str, Any]] = None) -> Iterable[Mapping[str, Any]]:
        since = self.since(sync_mode)
        incremental = sync_mode == SyncMode.incremental
        start_date = self.config.start_date
        latest = self._pending
        if self._read_started is None:
            self._read_started = time.time()
        stream_slice = stream_slice or {}
        if stream_slice.get(NO_PARTITIONS):
            records: Iterable[Mapping[str, Any]] = ()
        elif stream_slice.get(FAN_OUT):
            records = self._read_fan_out(sync_mode)
        else:
            records = self.records_of_slice(sync_mode, stream_slice)
        see = self._listed.see
        for record in records:
            record_id = record["id"]
            if record.get(CDC_DELETED_AT) is not None:
                # The provider's own tombstone: it says this record was deleted, and when (Kombo's remote_deleted_at).
                # Not part of the listing; emitted once, for an id a complete listing held, then forgotten. Like
                # the tombstones of `_finish_listing`, it does not move the cursor.
                if incremental and self._listed.owes_tombstone(record_id):
                    yield record
                continue
            updated_at = record["updated_at"]
            if incremental and start_date is not None and updated_at is not None and updated_at < start_date and updated_at < since:
                continue  # before start_date and the cursor: never emitted, so never tracked (a tombstone would add a row)
            # New, or back after a tombstone removed it: emitted whatever its updated_at.
            is_new = see(record_id)
            if self.marked_deleted(record):
                if record.get("remote_deleted_at") is None:
                    record["remote_deleted_at"] = self._deleted_at(record_id, is_new)
            elif "remote_deleted_at" not in record:
                record["remote_deleted_at"] = None  # a live record (the mappers leave it to this one place)
            if updated_at is not None:
                if since is not None and updated_at < since and not is_new:
                    continue
                if latest is None or updated_at > latest:
                    latest = updated_at
            yield record
        self._pending = latest
        if not stream_slice or stream_slice.get(LAST_SLICE):
            yield from self._finish_listing(sync_mode)  # tombstones never move the cursor: they are not read
            self._commit()

    def _deleted_at(self, record_id: str, is_new: bool) -> str | None:
        """For a record the provider lists as deleted without a time: when this connector first saw it so, or null
        when it never saw it live (design.md §5a)."""
        if record_id in self._marked:
            when = self._marked[record_id]
        elif self._listed.known is not None and not is_new:
            when = now_iso()  # listed live last time (known, not marked): deleted since
        else:
            when = None
        self._marked_now[record_id] = when
        return when

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """The slice's mapped records: its answers through `parse_response`, as `HttpStream.read_records` does."""
        for response, page_slice in self.pages_of_slice(sync_mode, stream_slice):
            yield from self.parse_response(response, stream_slice=page_slice, stream_state={})

    def pages_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[tuple[requests.Response, Mapping[str, Any]]]:
        """The slice's answers, each with the slice it is parsed with, through the CDK's paging and HTTP client.

        A fan-out thread runs this and hands the answers to the reading thread, which parses them: only the waiting
        on the network runs on the pool. A stream that needs more requests per slice than its pages (a join fetched
        first) overrides this and passes what it fetched on in the slice.
        """
        yield from self._read_pages(lambda _request, response, _state, page_slice: ((response, page_slice),), stream_slice, {})

    @staticmethod
    def person_directory(users: "LmsStream") -> dict[str, dict[str, Any]]:
        """id -> {id, name, emails} from a users stream: the smallest table an enrollment's user join needs."""
        return {
            user["id"]: {"id": user["id"], "name": user["name"], "emails": user["emails"]}
            for user in users.records_of_slice(SyncMode.full_refresh, {})
        }

    def _read_fan_out(self, sync_mode: SyncMode) -> Iterator[Mapping[str, Any]]:
        """Read the partitions on a bounded thread pool; records come out in partition order, as they arrive.

        A small pool here rather than the CDK's concurrent framework: its cursor cannot keep our per-stream
        `updated_at` state over per-parent partitions (cdk-notes.md §4). Each partition hands its answers (or its
        mapped records, in chunks) over through its own bounded queue: the oldest partition's records stream out
        while its later pages are still being read, and a partition that runs ahead waits once its queue is full.
        So memory stays bounded by 2 × `concurrency` partitions × CHUNKS_BUFFERED pages (or chunks of
        CHUNK_RECORDS records), whatever the size of a parent or the number of parents. Partitions start in order, so the oldest one is always running or done and the wait always ends.
        The request-rate cap (APIBudget) and the HTTP client are shared by the threads. The cursor still commits
        only after the last partition, in `read_records`.
        """
        window = self.concurrency
        pool = ThreadPoolExecutor(max_workers=window, thread_name_prefix=f"{self.name}-fan-out")
        stop = threading.Event()
        pending: deque[queue.Queue] = deque()
        try:
            for partition in self.partitions():
                chunks: queue.Queue = queue.Queue(maxsize=CHUNKS_BUFFERED)
                pool.submit(self._fill_partition, sync_mode, partition, chunks, stop)
                pending.append(chunks)
                if len(pending) >= 2 * window:  # keep the pool busy: the next partitions are queued already
                    yield from self._drain(pending.popleft())
            while pending:
                yield from self._drain(pending.popleft())
        finally:
            stop.set()  # a failed or closed read: partitions waiting on a full queue give up
            pool.shutdown(wait=True, cancel_futures=True)

    def _fill_partition(self, sync_mode: SyncMode, partition: Mapping[str, Any], chunks: queue.Queue, stop: threading.Event) -> None:
        """Runs on a pool thread: the partition's answers (or mapped records, in chunks), then None; an exception is
        handed over as it is."""

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    chunks.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            if type(self).records_of_slice is LmsStream.records_of_slice:
                # Answers, not records: parsing and mapping run on the reading thread (`_drain`). Measured on
                # TalentLMS at 0 ms latency, mapping on the pool threads cost ~20% more CPU than one thread reading
                # everything: the threads handed the GIL back and forth for work that cannot run in parallel anyway.
                for page in self.pages_of_slice(sync_mode, partition):
                    if not put(page):
                        return
                put(None)
                return
            # A stream that maps with more requests (Moodle's per-user calls) maps on the pool, in chunks.
            chunk: list[Mapping[str, Any]] = []
            for record in self.records_of_slice(sync_mode, partition):
                chunk.append(record)
                if len(chunk) >= CHUNK_RECORDS:
                    if not put(chunk):
                        return
                    chunk = []
            if chunk and not put(chunk):
                return
            put(None)
        except BaseException as error:  # noqa: BLE001 (re-raised on the reading thread, in partition order)
            put(error)

    def _drain(self, chunks: queue.Queue) -> Iterator[Mapping[str, Any]]:
        while True:
            item = chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, tuple):
                response, page_slice = item
                yield from self.parse_response(response, stream_slice=page_slice, stream_state={})
            else:
                yield from item

    def _commit(self) -> None:
        pending = self._pending
        if pending is not None and self.cursor_lag_seconds is not None and self._read_started is not None:
            pending = min(pending, epoch_to_iso(self._read_started - self.cursor_lag_seconds) or pending)
        if pending is not None and (self._cursor is None or pending > self._cursor):
            self._cursor = pending
        self._pending = None
        self._read_started = None


class BodyCursorStream(LmsStream):
    """Paging by an opaque cursor that each answer's body carries and the next request sends back as a query parameter.

    `{records_key: [...], cursor_key: "…" | null}`; a null, empty or absent cursor means the last page (hosted
    unified APIs such as Truto and Bindbee page this way). Subclasses name the keys and the page size, and add
    their own parameters through `list_params(stream_slice)`; `records_of(response)` gives the page's items.
    """

    records_key: ClassVar[str]
    cursor_key: ClassVar[str]
    # The key of the object that holds records and cursor, when the API wraps them (Kombo: `{"status", "data"}`).
    envelope_key: ClassVar[Optional[str]] = None
    # Whether every item must carry an id: true for a unified stream's records; a helper list whose items are keyed
    # otherwise (StackOne's assignments and completions, keyed by learner and learning object) turns it off.
    require_item_ids: ClassVar[bool] = True
    cursor_param: ClassVar[str]
    page_size_param: ClassVar[str]
    page_size: ClassVar[int]

    def __init__(self, provider: LmsProvider, max_retries: int = MAX_RETRIES, page_size: int | None = None) -> None:
        super().__init__(provider, max_retries=max_retries)
        if page_size is not None:
            self.page_size = page_size  # e.g. 1 for the cheap call of `check`
        # Per thread: a fan-out reads several partitions of this stream at once (`_read_fan_out`).
        self._walk = threading.local()

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        return {}

    def request_params(self, stream_state: Mapping[str, Any] | None = None, stream_slice: Mapping[str, Any] | None = None, next_page_token: Mapping[str, Any] | None = None) -> MutableMapping[str, Any]:
        # Every other parameter stays identical while walking a cursor: filters are not carried by it.
        params: dict[str, Any] = {self.page_size_param: self.page_size, **self.list_params(stream_slice)}
        self._walk.sent_cursor = (next_page_token or {}).get(self.cursor_param)
        if next_page_token:
            params.update(next_page_token)
        return params

    def records_of(self, response: requests.Response) -> list[Mapping[str, Any]]:
        return self._parsed(response)[0]

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        cursor = self._parsed(response)[1]
        if not cursor:
            return None
        if cursor == getattr(self._walk, "sent_cursor", None):
            # The same cursor again would loop forever: a broken answer, not a page.
            raise self.malformed(response, f"the answer's {self.cursor_key} repeats the cursor just sent")
        return {self.cursor_param: cursor}

    def _parsed(self, response: requests.Response) -> tuple[list[Mapping[str, Any]], str | None]:
        if not response.ok:
            return [], None  # an answer the error handler chose to ignore (a child deleted mid-sync): no page, no next
        return parsed_once(response, self._parse_page)

    def _parse_page(self, response: requests.Response) -> tuple[list[Mapping[str, Any]], str | None]:
        body = self.json_of(response)
        if self.envelope_key is not None and isinstance(body, dict):
            body = body.get(self.envelope_key)
        items = body.get(self.records_key) if isinstance(body, dict) else None
        ids = self.require_item_ids
        if not isinstance(items, list) or not all(isinstance(item, dict) and (not ids or item.get("id") not in (None, "")) for item in items):
            raise self.malformed(response, f"expected an object whose {self.records_key!r} is an array of objects" + (", each with an id" if ids else ""))
        cursor = body.get(self.cursor_key)
        if cursor is not None and not isinstance(cursor, str):
            raise self.malformed(response, f"expected {self.cursor_key!r} to be a string or null, got {type(cursor).__name__}")
        return items, cursor or None


class OffsetPageStream(LmsStream):
    """Paging by `limit` and `offset` query parameters over a body that is the array of items itself (or holds it
    under `records_key`). A page with fewer than `limit` items is the last one; an empty page ends the walk too.

    The offset of the next request is the offset just sent plus the items received, read back from the request's
    own URL (so that pages of several partitions read at once on the fan-out pool do not share state). A full page
    that starts with the same item as the page before it means the API ignored `offset`: that would loop forever,
    so it ends the sync as a malformed answer. Subclasses name the page size and add their own parameters through
    `list_params(stream_slice)`; `records_of(response)` gives the page's items.
    """

    limit_param: ClassVar[str] = "limit"
    offset_param: ClassVar[str] = "offset"
    records_key: ClassVar[Optional[str]] = None  # None: the body is the array
    page_size: ClassVar[int]

    def __init__(self, provider: LmsProvider, max_retries: int = MAX_RETRIES, page_size: int | None = None) -> None:
        super().__init__(provider, max_retries=max_retries)
        if page_size is not None:
            self.page_size = page_size  # e.g. 1 for the cheap call of `check`
        self._first_ids = threading.local()  # per thread: the first item id of the previous page of its walk

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        return {}

    def request_params(self, stream_state: Mapping[str, Any] | None = None, stream_slice: Mapping[str, Any] | None = None, next_page_token: Mapping[str, Any] | None = None) -> MutableMapping[str, Any]:
        offset = (next_page_token or {}).get(self.offset_param, 0)
        return {**self.list_params(stream_slice), self.limit_param: self.page_size, self.offset_param: offset}

    def records_of(self, response: requests.Response) -> list[Mapping[str, Any]]:
        if not response.ok:
            return []  # an answer the error handler chose to ignore: no page, no next
        return parsed_once(response, self._parse_offset_page)

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        items = self.records_of(response)
        if not items or len(items) < self.page_size:
            return None
        sent = parse_qs(urlsplit(response.request.url or "").query).get(self.offset_param, ["0"])[0]
        try:
            offset = int(float(sent))
        except ValueError:
            offset = 0
        first = items[0].get("id")
        previous = getattr(self._first_ids, "value", None) if offset else None
        if previous is not None and first == previous:
            raise self.malformed(response, f"the page at {self.offset_param}={offset} repeats the previous page (is {self.offset_param} ignored?)")
        self._first_ids.value = first
        return {self.offset_param: offset + len(items)}

    def _parse_offset_page(self, response: requests.Response) -> list[Mapping[str, Any]]:
        body = self.json_of(response)
        items = body.get(self.records_key) if self.records_key and isinstance(body, dict) else body
        if not isinstance(items, list) or not all(isinstance(item, dict) and item.get("id") not in (None, "") for item in items):
            where = f"whose {self.records_key!r} is an array" if self.records_key else "an array"
            raise self.malformed(response, f"expected {where} of objects, each with an id")
        return items

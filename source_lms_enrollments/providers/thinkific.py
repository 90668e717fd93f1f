"""Thinkific Admin API v1 (https://api.thinkific.com/api/public/v1): users, courses and enrollments.

Facts and their sources: docs/providers/thinkific.md.
- Auth: the site's API key in `X-Auth-API-Key` and its subdomain in `X-Auth-Subdomain`
  (developers.thinkific.com/api/api-key-auth). A wrong pair answers 401 `{"error": "Authentication Error"}`; so does
  a plan without API access.
- Lists are `{"items": [...], "meta": {"pagination": {"current_page", "next_page", ...}}}`, paged with `page`
  (1-based) and `limit` (default 25; no maximum documented). `next_page` null means the last page.
- Only `/enrollments` filters by modification time (`query[updated_after]`); `/users` and `/courses` take no
  date filter and carry no modification time, so they are read in full and their `updated_at` is null.
- 120 requests a minute per site, 429 above with `RateLimit-Reset`; 10 requests in flight at most. The provider
  paces itself under the minute limit and reads one request at a time.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any, ClassVar, Iterable, Iterator, Mapping, MutableMapping
from urllib.parse import parse_qsl, urlsplit

import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.streams.call_rate import APIBudget, MovingWindowCallRatePolicy, Rate

from ..base import LmsProvider, LmsStream, config_error, parsed_once
from ..http_policy import MAX_RETRIES, RetryAfterBackoff
from ..unified import epoch_to_iso, full_name, iso_to_iso, parse_iso, primary_emails, to_number, to_str

# Thinkific documents the default `limit` (25) but no maximum; paging follows `meta.pagination.next_page`, never
# the page size, so a smaller server cap only costs requests.
PAGE_SIZE = 100


class Thinkific(LmsProvider):
    provider_type = "thinkific"
    title = "Thinkific"
    default_base_url = "https://api.thinkific.com"
    base_url_example = "https://api.thinkific.com"
    spec_required = ["api_key", "subdomain"]
    spec_properties = {
        "api_key": {
            "type": "string",
            "title": "API key",
            "description": "The site's API key (Thinkific → Settings → Code & analytics → API). Sent in the X-Auth-API-Key header.",
            "airbyte_secret": True,
            "order": 2,
        },
        "subdomain": {
            "type": "string",
            "title": "Subdomain",
            "description": "The site's subdomain: acme for acme.thinkific.com. Sent in the X-Auth-Subdomain header.",
            "order": 3,
        },
    }
    credential_hint = (
        "Check provider.api_key and provider.subdomain (Thinkific → Settings → Code & analytics → API); "
        "Thinkific also answers 401 when the site's plan has no API access."
    )
    # developers.thinkific.com/api/rate-limits: 120 requests a minute, then 429. A moving window of 110 a minute
    # keeps under it in any 60 s, whichever window Thinkific counts in, and leaves room for a check or a retry.
    rate_limit_requests: ClassVar[int] = 110
    rate_limit_window_seconds: ClassVar[float] = 60.0

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/api/public/v1/"
        self.api_budget = self.paced_budget()
        self.subdomain = site_subdomain(self.config.provider.get("subdomain"))

    def pace(self) -> tuple[int, float]:
        """(requests, window in seconds): Thinkific's per-minute limit, or the user's `requests_per_minute` when lower.

        Streams here read one request at a time (no fan-out), far under the 10 concurrent requests Thinkific allows.
        """
        limit, window = self.rate_limit_requests, self.rate_limit_window_seconds
        user_cap = self.config.requests_per_minute
        if user_cap is not None and user_cap * window / 60.0 < limit:
            return user_cap, 60.0
        return limit, window

    def paced_budget(self) -> APIBudget:
        """`pace()` as a moving window shared by every stream: at most that many requests in any window."""
        limit, window = self.pace()
        return APIBudget(policies=[MovingWindowCallRatePolicy(rates=[Rate(limit, timedelta(seconds=window))], matchers=[])])

    def streams(self) -> list[LmsStream]:
        return [ThinkificUsers(self), ThinkificCourses(self), ThinkificCourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        return ThinkificCourses(self, max_retries=1, page_size=1)


_SUBDOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")


def site_subdomain(value: Any) -> str:
    """The subdomain as Thinkific wants it in `X-Auth-Subdomain`: `acme`; the site's address
    (`https://acme.thinkific.com/`) is accepted and cut down to it. Anything else is a config error, before a
    request (a header cannot carry a line break, and a wrong value would only come back as 401)."""
    text = str(value).strip().lower()
    text = re.sub(r"^https?://", "", text).split("/")[0]
    if text.endswith(".thinkific.com"):
        text = text[: -len(".thinkific.com")]
    if not _SUBDOMAIN.fullmatch(text):
        raise config_error(
            "provider.subdomain must be the site's subdomain: acme for acme.thinkific.com "
            "(letters, digits and hyphens)."
        )
    return text


class PageNumberStream(LmsStream):
    """Paging by page number: `page` (1-based) and a page size go out, the answer's body names the next page.

    Generic over the envelope: subclasses name where the items are (`items_key`) and where the next page number is
    (`next_page_path`); a null or absent next page is the last one. A next page at or before the one just read
    would loop forever and ends the sync as a malformed answer.
    """

    items_key: ClassVar[str] = "items"
    next_page_path: ClassVar[tuple[str, ...]] = ("meta", "pagination", "next_page")
    page_param: ClassVar[str] = "page"
    page_size_param: ClassVar[str] = "limit"
    page_size: ClassVar[int] = PAGE_SIZE

    def __init__(self, provider: LmsProvider, max_retries: int = MAX_RETRIES, page_size: int | None = None) -> None:
        super().__init__(provider, max_retries=max_retries)
        if page_size is not None:
            self.page_size = page_size  # e.g. 1 for the cheap call of `check`

    # The modified-since bound this read sends, set when its slices are made (request_params has no sync mode).
    _since_sent: str | None = None

    def list_params(self, since: str | None) -> dict[str, Any]:
        """Filters sent with every page (the same on each page); `since` is the bound to send, or None."""
        return {}

    def stream_slices(self, *, sync_mode: SyncMode, cursor_field: Any = None, stream_state: Any = None) -> Iterable[Any]:
        for stream_slice in super().stream_slices(sync_mode=sync_mode, cursor_field=cursor_field, stream_state=stream_state):
            # After the base has decided whether this read sweeps: None then, and for a stream that does not filter.
            self._since_sent = self.since_on_server(sync_mode)
            yield stream_slice

    def request_params(self, stream_state: Mapping[str, Any] | None = None, stream_slice: Mapping[str, Any] | None = None, next_page_token: Mapping[str, Any] | None = None) -> MutableMapping[str, Any]:
        params: dict[str, Any] = {self.page_param: 1, self.page_size_param: self.page_size, **self.list_params(self._since_sent)}
        if next_page_token:
            params.update(next_page_token)
        return params

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        following = self._page(response)[1]
        if following is None:
            return None
        current = _sent_page(response, self.page_param)
        if following <= current:
            raise self.malformed(response, f"the next page ({following}) is not after the page just read ({current}); refusing to loop")
        return {self.page_param: following}

    def records_of(self, response: requests.Response) -> list[Mapping[str, Any]]:
        return self._page(response)[0]

    def _page(self, response: requests.Response) -> tuple[list[Mapping[str, Any]], int | None]:
        return parsed_once(response, self._parse_page)

    def _parse_page(self, response: requests.Response) -> tuple[list[Mapping[str, Any]], int | None]:
        body = self.json_of(response)
        items = body.get(self.items_key) if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) and item.get("id") not in (None, "") for item in items):
            raise self.malformed(response, f"expected an object whose {self.items_key!r} is an array of objects, each with an id; is provider.base_url the API host?")
        node: Any = body
        for key in self.next_page_path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return items, None
        if isinstance(node, bool) or not isinstance(node, (int, float, str)) or not str(node).isdigit():
            raise self.malformed(response, f"expected {'.'.join(self.next_page_path)} to be a page number or null, got {node!r}")
        return items, int(node)


def _sent_page(response: requests.Response, param: str) -> int:
    url = response.request.url if response.request is not None else response.url
    value = dict(parse_qsl(urlsplit(url or "").query)).get(param, "1")
    return int(value) if value.isdigit() else 1


class ThinkificResetBackoff(RetryAfterBackoff):
    """On a 429, wait until `RateLimit-Reset` says the limit resets.

    Thinkific's two pages disagree on the value: an epoch time (developers.thinkific.com/api/rate-limits) or the
    milliseconds until the reset (support.thinkific.dev, REST API Rate Limits). Both are read: a value of 10^12 or
    more is epoch milliseconds, 10^9 or more epoch seconds, 1000 or more milliseconds to wait; a small value is read
    as seconds (at most the one-minute window). Anything else falls through to exponential backoff.
    """

    def wait_seconds(self, response: requests.Response) -> float | None:  # type: ignore[override]
        if response.status_code != 429:
            return None
        return reset_wait_seconds(response.headers.get("RateLimit-Reset"), time.time())


def reset_wait_seconds(value: str | None, now: float) -> float | None:
    try:
        number = float((value or "").strip())
    except ValueError:
        return None
    if number < 0:
        return None
    if number >= 1e12:
        return max(number / 1000.0 - now, 0.0)
    if number >= 1e9:
        return max(number - now, 0.0)
    if number >= 1000:
        return number / 1000.0
    return min(number, 60.0)


class ThinkificStream(PageNumberStream):
    """A Thinkific Admin API list: the two auth headers, `items` + `meta.pagination`, errors in `error`."""

    def request_headers(self, **_: Any) -> Mapping[str, Any]:
        return {
            "X-Auth-API-Key": str(self.config.provider["api_key"]),
            "X-Auth-Subdomain": self.provider.subdomain,
            "Accept": "application/json",
        }

    def provider_backoffs(self) -> list[Any]:
        return [ThinkificResetBackoff(self.provider.title)]

    def describe_error(self, response: requests.Response) -> str | None:
        return thinkific_error_message(response)


def thinkific_error_message(response: requests.Response) -> str | None:
    """`{"error": "..."}` (401, 403, 404) or `{"errors": [...] | {field: [...]}}` (422), as documented."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, str) and error:
        return error
    errors = body.get("errors")
    if isinstance(errors, list):
        return "; ".join(str(e) for e in errors if e) or None
    if isinstance(errors, dict):
        return "; ".join(f"{field} {'; '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}" for field, msgs in errors.items()) or None
    return None


class ThinkificUsers(ThinkificStream):
    """GET /users: every user of the site; no date filter and no modification time, so read in full."""

    unified_name = "users"

    def path(self, **_: Any) -> str:
        return "users"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_user(raw, keep_raw))


class ThinkificCourses(ThinkificStream):
    """GET /courses: every course. Bundles are sold and enrolled as a set of courses: enrolling a learner in a
    bundle enrolls them in each of its courses, and those rows are in /enrollments; there is no bundle list."""

    unified_name = "courses"

    def path(self, **_: Any) -> str:
        return "courses"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_course(raw, keep_raw))


class ThinkificCourseEnrollments(ThinkificStream):
    """GET /enrollments, filtered on the server by `query[updated_after]` on an incremental sync.

    The filter is sent one second before the cursor: "after" may be strict, and a row changed in the cursor's own
    second must still come (design.md §5, `>=`). Every `deletion_sweep_days` the filter is left out and the whole
    list is read, so that rows gone since show (base: `since_on_server`).
    """

    unified_name = "course_enrollments"
    server_side_filter = True

    def list_params(self, since: str | None) -> dict[str, Any]:
        if since is None:
            return {}
        return {"query[updated_after]": updated_after_param(since)}

    def path(self, **_: Any) -> str:
        return "enrollments"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_course_enrollment(raw, keep_raw))


def updated_after_param(since: str) -> str:
    """The cursor minus one second, as `2024-05-01T11:59:59Z`."""
    return epoch_to_iso(parse_iso(since).timestamp() - 1) or since


# ---- mappers: Thinkific payloads in, unified records out -------------------------------------------------------

# UserResponse.roles (Thinkific's four); a user with none is a student.
_ROLE_ORDER = (("site_admin", "admin"), ("course_admin", "instructor"), ("group_analyst", "manager"))


def user_role(roles: Any) -> str:
    """The strongest of Thinkific's roles: site admin, then course admin (teaches), then group analyst (reports on a
    group); an affiliate (sells) or a user without a role is a learner."""
    names = {str(role).strip().lower() for role in roles} if isinstance(roles, list) else set()
    for name, role in _ROLE_ORDER:
        if name in names:
            return role
    return "learner"


def _remote(raw: Mapping[str, Any], keep: bool) -> dict[str, Any] | None:
    return dict(raw) if keep else None


def to_user(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    first, last = to_str(raw.get("first_name")), to_str(raw.get("last_name"))
    custom = {}
    for field in raw.get("custom_profile_fields") or []:
        if isinstance(field, dict) and to_str(field.get("label")):
            custom[str(field["label"])] = field.get("value")
    if to_str(raw.get("company")):
        custom["company"] = raw["company"]
    return {
        "id": str(raw["id"]),
        "name": to_str(raw.get("full_name")) or full_name(first, last),
        "first_name": first,
        "last_name": last,
        "username": None,  # Thinkific signs in by email; it has no user name
        "emails": primary_emails(to_str(raw.get("email"))),
        # The API has no account state: a listed user is an account that exists; a deleted one is no longer listed.
        "status": "active",
        "role": user_role(raw.get("roles")),
        "locale": None,
        "timezone": None,
        "job_title": to_str(raw.get("headline")),
        "last_login_at": None,
        "created_at": iso_to_iso(raw.get("created_at")),
        "updated_at": None,  # UserResponse has no modification time and a rename moves no timestamp (design.md §4)
        "custom_fields": custom,
        "remote_data": _remote(raw, keep_raw),
    }


def to_course(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    urls = []
    image = to_str(raw.get("course_card_image_url"))
    if image:
        urls.append({"url": image, "type": "image"})
    keywords = to_str(raw.get("keywords"))
    tags = [{"id": None, "name": word.strip()} for word in keywords.split(",") if word.strip()] if keywords else []
    return {
        "id": str(raw["id"]),
        "title": to_str(raw.get("name")),
        "description": to_str(raw.get("description")),
        "code": to_str(raw.get("slug")),
        "type": "course",
        "status": "unknown",  # CourseResponse says nothing of draft or published
        "language": None,
        "duration_seconds": None,  # `duration` is a deprecated free-text field of legacy themes
        "urls": urls,
        "categories": [],
        "tags": tags,
        "created_at": None,
        "updated_at": None,  # CourseResponse has no timestamps
        "custom_fields": {"product_id": to_str(raw.get("product_id")), "instructor_id": to_str(raw.get("instructor_id"))},
        "remote_data": _remote(raw, keep_raw),
    }


def progress_percent(fraction: Any) -> int | float | None:
    """`percentage_completed` is a fraction, 0.0–1.0 (0.75 is 75 %), per the EnrollmentResponse schema."""
    number = to_number(fraction)
    if number is None:
        return None
    percent = round(float(number) * 100, 2)
    percent = 0.0 if percent < 0 else 100.0 if percent > 100 else percent
    return int(percent) if percent.is_integer() else percent


def enrollment_status(raw: Mapping[str, Any], now: str) -> str:
    """Completed wins (`completed`, `completed_at`, or 100 %): expiry ends access, not the learner's result.
    Then `expired` (access ended; the row stays listed, so it is no deletion); then an activation still ahead
    (`activated_at` in the future: assigned, not yet open); then progress: in_progress above 0 %, else enrolled
    (a free trial, without `activated_at`, is enrolled too, with `custom_fields.is_free_trial`)."""
    percent = progress_percent(raw.get("percentage_completed"))
    if raw.get("completed") is True or to_str(raw.get("completed_at")) or (percent is not None and percent >= 100):
        return "completed"
    if raw.get("expired") is True:
        return "expired"
    activated = iso_to_iso(raw.get("activated_at"))
    if activated is not None and activated > now:
        return "assigned"
    return "in_progress" if percent else "enrolled"


def to_course_enrollment(raw: Mapping[str, Any], keep_raw: bool = False, now: str | None = None) -> dict[str, Any]:
    user_id, course_id = to_str(raw.get("user_id")), to_str(raw.get("course_id"))
    if user_id is None or course_id is None:
        raise ValueError("the enrollment names no user_id or course_id")
    completed_at = iso_to_iso(raw.get("completed_at"))
    return {
        "id": str(raw["id"]),
        "user": {"id": user_id, "name": to_str(raw.get("user_name")), "emails": primary_emails(to_str(raw.get("user_email")))},
        "course": {"id": course_id, "title": to_str(raw.get("course_name"))},
        "status": enrollment_status(raw, now or epoch_to_iso(time.time()) or ""),
        "assigned_at": None,
        "due_at": None,
        "enrolled_at": iso_to_iso(raw.get("activated_at")),
        "started_at": iso_to_iso(raw.get("started_at")),
        "last_activity_at": None,
        "completed_at": completed_at,
        "progress_percent": progress_percent(raw.get("percentage_completed")),
        "time_spent_seconds": None,
        "score": None,
        "is_mandatory": None,
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": [],
        "created_at": iso_to_iso(raw.get("created_at")),  # not in the documented schema; kept when sent
        "updated_at": iso_to_iso(raw.get("updated_at")),
        "custom_fields": {
            "expiry_date": iso_to_iso(raw.get("expiry_date")),
            "expired": raw.get("expired") if isinstance(raw.get("expired"), bool) else None,
            "is_free_trial": raw.get("is_free_trial") if isinstance(raw.get("is_free_trial"), bool) else None,
        },
        "remote_data": _remote(raw, keep_raw),
    }

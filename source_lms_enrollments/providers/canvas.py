"""Canvas LMS, REST API v1 ({base_url}/api/v1): an account's users and courses, and each course's student enrollments.

Facts: ../shared/docs/providers-moodle-canvas.md §2 and §3, checked against canvas-lms's source (docs/providers/canvas.md).
- Auth: `Authorization: Bearer {access_token}`; the token's user must be an admin of the account.
- Paging: the `Link` header's rel="next", an opaque absolute URL carrying every parameter (enrollments page with
  bookmarks, so pages are never computed); `per_page` is clamped by Canvas to 1..100 (lib/api.rb `MAX_PER_PAGE`).
- No endpoint filters by modification time: every stream is read in full and filtered here.
- Throttling: a leaky bucket per token. Answers carry `X-Request-Cost` and `X-Rate-Limit-Remaining`; a full bucket
  answers **429** since October 2025 (https://developerdocs.instructure.com/services/canvas/basics/file.throttling),
  historically **403** "403 Forbidden (Rate Limit Exceeded)", with no `Retry-After` (app/middleware/request_throttle.rb).
  Both are waited out with the same pacing and retried; Canvas reports missing permissions with 401, not 403.
- `/admins` only supplies the `admin` role: a token that may not list them (401/403) reads users without it.
- Errors: `{"errors": [{"message": ...}]}`.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping
from urllib.parse import quote, urlsplit

import orjson
import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.streams.http.requests_native_auth import TokenAuthenticator

from ..base import LmsProvider, LmsStream, config_error
from ..http_policy import endpoint_of
from ..unified import iso_to_iso, latest, lookup, now_iso, primary_emails, to_number, to_percent, to_str

logger = logging.getLogger("airbyte")

PAGE_SIZE = 100  # Canvas's maximum per_page; a larger value is silently clamped to it

# Canvas's throttle defaults (request_throttle.rb LeakyBucket): the bucket leaks 10 units a second, a request is
# refused once the bucket passes its high-water mark, and each request in flight reserves 50 units up front.
THROTTLE_OUTFLOW_PER_SECOND = 10.0
THROTTLE_UP_FRONT_COST = 50.0
MAX_PACING_WAIT_SECONDS = 30.0

# Student enrollments are the learner enrollments (custom student roles keep this type); every state but
# deleted and rejected is asked for, since the default leaves out concluded ("completed") enrollments.
LEARNER_TYPE = "StudentEnrollment"
ENROLLMENT_STATES = ("active", "invited", "creation_pending", "inactive", "completed")

# accounts/:id/users?enrollment_type=… lists users holding that course role somewhere in the account. A user's one
# unified role is the highest they hold; the order below is ascending precedence (admins come from /admins).
ROLE_BY_ENROLLMENT_TYPE = (("observer", "other"), ("student", "learner"), ("designer", "instructor"), ("ta", "instructor"), ("teacher", "instructor"))


class Canvas(LmsProvider):
    provider_type = "canvas"
    title = "Canvas LMS"
    base_url_example = "https://school.instructure.com"
    spec_required = ["access_token"]
    spec_properties = {
        "access_token": {
            "type": "string",
            "title": "Access token",
            "description": "A token of an account admin: Account → Settings → Approved Integrations → New Access Token, or an OAuth2 token. Sent as a Bearer token.",
            "airbyte_secret": True,
            "order": 2,
        },
        "account_id": {
            "type": "string",
            "title": "Account ID",
            "description": "The account whose users and courses are read; a sub-account's id reads that sub-account. Empty: the root account of the Canvas site.",
            "examples": ["1", "12345~67"],
            "order": 3,
        },
    }
    credential_hint = (
        "Check provider.access_token (not expired or revoked) and that its user is an admin of the account "
        "(Canvas answers 401 both for a bad token and for a missing permission)."
    )
    # Canvas meters cost, not requests at once: 8 in flight reserve 400 of the bucket's 600 units up front, and the
    # pacer (CanvasPacer) slows down before the bucket fills. 8 keeps a 50 ms-latency sync near its ideal (`make bench`).
    default_concurrency = 8

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/api/v1/"
        raw = self.config.provider.get("account_id")
        account = str(raw).strip() if raw not in (None, "") else ""
        if "/" in account or "?" in account:
            raise config_error(f"provider.account_id must be a Canvas account id such as 1 or 12345~67, got {account!r}.")
        self.configured_account = account or None
        self._account_id: str | None = self.configured_account
        self._admins_denied = False  # warned once that /admins is not readable with this token
        # Keep room for every request the fan-out may have in flight at once.
        self.pacer = CanvasPacer(low_water=THROTTLE_UP_FRONT_COST * (self.config.max_concurrency or self.default_concurrency))

    def make_authenticator(self) -> TokenAuthenticator:
        return TokenAuthenticator(token=str(self.config.provider["access_token"]))

    def streams(self) -> list[LmsStream]:
        return [CanvasUsers(self), CanvasCourses(self), CanvasCourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        return CanvasAccount(self, max_retries=1)

    @property
    def account_id(self) -> str:
        """The configured account, or the site's root account (`accounts/self`), resolved once per sync."""
        if self._account_id is None:
            account = next(iter(CanvasAccount(self).records_of_slice(SyncMode.full_refresh, {})))
            self._account_id = str(account["id"])
        return self._account_id

    def user_roles(self) -> dict[str, str]:
        """user id -> unified role: admins of the account, else the highest course role held in it."""
        roles: dict[str, str] = {}
        for enrollment_type, role in ROLE_BY_ENROLLMENT_TYPE:
            for raw in CanvasAccountUsers(self, enrollment_type=enrollment_type).records_of_slice(SyncMode.full_refresh, {}):
                roles[str(raw["id"])] = role
        for admin in CanvasAdmins(self).records_of_slice(SyncMode.full_refresh, {}):
            roles[str(admin["user"]["id"])] = "admin"
        return roles

    def warn_admins_denied(self, response: requests.Response) -> None:
        """Once per sync: the token may not list the account's admins, so nobody gets the `admin` role."""
        if self._admins_denied:
            return
        self._admins_denied = True
        said = canvas_error_message(response)
        logger.warning(
            f"{self.title} GET {endpoint_of(response.url)} answered HTTP {response.status_code}{f': {said}' if said else ''}: "
            "this token may not list the account's admins. Users are read without the admin role; each keeps the "
            "role of their course enrollments. To get it, use a token of an admin of this account who may view its admins."
        )


# ---- throttling -----------------------------------------------------------------------------------------------


def header_float(response: requests.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def is_throttled(response: requests.Response) -> bool:
    """Canvas's throttle answer: any 429 (since October 2025), or the historic 403 with "Rate Limit Exceeded" in its
    text body or an exhausted quota header (self-hosted and older Canvas still answer so)."""
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    if b"rate limit exceeded" in (response.content or b"")[:200].lower():
        return True
    remaining = header_float(response, "X-Rate-Limit-Remaining")
    return remaining is not None and remaining <= 0


class CanvasThrottleBackoff(BackoffStrategy):
    """How long to wait after a throttled answer (429 or 403): until the bucket has leaked below its mark, plus exponential jitter.

    `X-Rate-Limit-Remaining` is the high-water mark minus the bucket's level, so a negative value says how far over
    the bucket is; it leaks THROTTLE_OUTFLOW_PER_SECOND units a second. The CDK adds 1 s to the value returned.
    """

    def __init__(self, max_wait: float = 120.0) -> None:
        self._max_wait = max_wait

    def backoff_time(self, response_or_exception, attempt_count: int) -> float | None:  # noqa: ANN001 (CDK signature)
        if not isinstance(response_or_exception, requests.Response) or not is_throttled(response_or_exception):
            return None
        remaining = header_float(response_or_exception, "X-Rate-Limit-Remaining") or 0.0
        drain = max(0.0, -remaining) / THROTTLE_OUTFLOW_PER_SECOND
        ceiling = 2.0 ** max(attempt_count - 1, 0)
        return min(self._max_wait, drain + random.uniform(ceiling / 2, ceiling))


class CanvasPacer:
    """Slows down before Canvas throttles: when `X-Rate-Limit-Remaining` falls below a low-water mark (at least twice
    the last `X-Request-Cost`), wait for the bucket to leak back above it."""

    def __init__(self, low_water: float = THROTTLE_UP_FRONT_COST, outflow: float = THROTTLE_OUTFLOW_PER_SECOND,
                 max_wait: float = MAX_PACING_WAIT_SECONDS, sleep: Callable[[float], None] = time.sleep) -> None:
        self.low_water, self.outflow, self.max_wait, self.sleep = low_water, outflow, max_wait, sleep
        self.waited = 0.0

    def after(self, response: requests.Response) -> float:
        remaining = header_float(response, "X-Rate-Limit-Remaining")
        if remaining is None:  # throttling does not apply to this token or site
            return 0.0
        mark = max(self.low_water, 2 * (header_float(response, "X-Request-Cost") or 0.0))
        if remaining >= mark:
            return 0.0
        wait = min(self.max_wait, (mark - remaining) / self.outflow)
        logger.info(f"Canvas LMS request quota is low ({remaining:.1f} left): waiting {wait:.1f} s before the next request.")
        self.sleep(wait)
        self.waited += wait
        return wait


# ---- streams --------------------------------------------------------------------------------------------------


class CanvasStream(LmsStream):
    """Link-header paging, the `errors` envelope, the 403 throttle, and pacing on the quota headers."""

    provider: Canvas

    def provider_error_rule(self, response: requests.Response) -> ErrorResolution | None:
        if is_throttled(response):
            return ErrorResolution(
                ResponseAction.RATE_LIMITED,
                FailureType.transient_error,
                "Canvas throttled this token (Rate Limit Exceeded); the sync will resume from its last state next time.",
            )
        return None

    def provider_backoffs(self) -> list[Any]:
        # After Retry-After (Canvas sends none today; should a 429 carry one, it wins), before exponential jitter.
        return [CanvasThrottleBackoff()]

    def describe_error(self, response: requests.Response) -> str | None:
        return canvas_error_message(response)

    def path(self, stream_slice: Mapping[str, Any] | None = None, next_page_token: Mapping[str, Any] | None = None, **_: Any) -> str:
        if next_page_token:
            return next_page_token["next_url"]  # absolute: urljoin keeps it as it is
        return self.first_path(stream_slice or {})

    def first_path(self, stream_slice: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def request_params(self, stream_state: Any = None, stream_slice: Mapping[str, Any] | None = None, next_page_token: Any = None) -> dict[str, Any]:
        if next_page_token:
            return {}  # the next link carries every parameter, per_page included
        return {"per_page": PAGE_SIZE, **self.list_params(stream_slice or {})}

    def list_params(self, stream_slice: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def next_page_token(self, response: requests.Response) -> dict[str, str] | None:
        url = (response.links.get("next") or {}).get("url")
        if not url:
            return None
        # The token goes with every request: never follow a link off the Canvas host.
        link, base = urlsplit(url), urlsplit(self.config.base_url)
        if (link.scheme, link.netloc) != (base.scheme, base.netloc):
            raise self.malformed(response, f"the next-page link points to {link.scheme}://{link.netloc}, not the Canvas host")
        return {"next_url": url}

    def body_of(self, response: requests.Response) -> Any:
        self.provider.pacer.after(response)
        content = response.content or b""
        if content.startswith(b"while(1);"):  # Canvas's JSON-hijacking guard, sent when a call does not look like API use
            try:
                return orjson.loads(content[len(b"while(1);"):])
            except orjson.JSONDecodeError as error:
                raise self.malformed(response, f"the answer is not valid JSON ({error})") from None
        return self.json_of(response)

    def rows_of(self, response: requests.Response) -> list[Mapping[str, Any]]:
        body = self.body_of(response)
        if not isinstance(body, list) or not all(isinstance(row, dict) and row.get("id") is not None for row in body):
            raise self.malformed(response, "expected a JSON array of objects, each with an id")
        return body


class CanvasAccount(CanvasStream):
    """GET accounts/{account_id}, or accounts/self (the site's root account): `check`, and the default account."""

    unified_name = "account"

    def first_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"accounts/{quote(self.provider.configured_account or 'self', safe='~')}"

    def request_params(self, **_: Any) -> dict[str, Any]:
        return {}

    def provider_error_rule(self, response: requests.Response) -> ErrorResolution | None:
        if response.status_code == 404:
            return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, "Check provider.account_id: no such account on this Canvas site.")
        return super().provider_error_rule(response)

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        body = self.body_of(response)
        if not isinstance(body, dict) or body.get("id") is None:
            raise self.malformed(response, "expected an account object; is provider.base_url a Canvas site?")
        yield body


class CanvasAccountUsers(CanvasStream):
    """GET accounts/:id/users, unmapped: the account's users (all, or those holding one course role)."""

    unified_name = "account_users"

    def __init__(self, provider: Canvas, enrollment_type: str | None = None, **kwargs: Any) -> None:
        self.enrollment_type = enrollment_type
        super().__init__(provider, **kwargs)

    def first_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"accounts/{self.provider.account_id}/users"

    def list_params(self, stream_slice: Mapping[str, Any]) -> dict[str, Any]:
        # sort=id: "use id if you intend to retrieve many pages"; other sorts may be rate-limited after 50 pages.
        params: dict[str, Any] = {"sort": "id", "order": "asc"}
        if self.enrollment_type:
            params["enrollment_type"] = self.enrollment_type
        else:
            params["include[]"] = ["email", "last_login", "time_zone"]
        return params

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        yield from self.rows_of(response)


class CanvasAdmins(CanvasStream):
    """GET accounts/:id/admins: the account's admins, each with its `user`.

    It only supplies the `admin` role, and a token that may read the account's users may still not list its admins
    (a sub-account admin, a role without "Admins - view"): Canvas then answers 401 (or 403). That is not fatal: the
    users are read without the `admin` role, each keeping the role of their course enrollments, and a warning says so.
    """

    unified_name = "account_admins"
    denied: ClassVar[tuple[int, ...]] = (401, 403)

    def first_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"accounts/{self.provider.account_id}/admins"

    def provider_error_rule(self, response: requests.Response) -> ErrorResolution | None:
        throttled = super().provider_error_rule(response)  # a throttled 403 is still waited out and retried
        if throttled is None and response.status_code in self.denied:
            return ErrorResolution(ResponseAction.IGNORE, None, "The account's admins are read without the admin role.")
        return throttled

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        if response.status_code in self.denied:
            self.provider.warn_admins_denied(response)
            return
        for admin in self.rows_of(response):
            if not isinstance(admin.get("user"), dict) or admin["user"].get("id") is None:
                raise self.malformed(response, "an admin has no user object with an id")
            if admin.get("workflow_state", "active") == "active":
                yield admin


class CanvasUsers(CanvasAccountUsers):
    """GET accounts/:id/users with e-mail, last login and time zone; roles from /admins and the enrollment-type lists.

    A Canvas user has no modification time, and a rename moves none of its timestamps: `updated_at` is null, so every
    user is emitted by every sync (design.md §4).
    """

    unified_name = "users"

    def __init__(self, provider: Canvas, **kwargs: Any) -> None:
        super().__init__(provider, **kwargs)
        self._roles: dict[str, str] = {}

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        self._roles = self.provider.user_roles()
        yield from super().records_of_slice(sync_mode, stream_slice)

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        for raw in self.rows_of(response):
            yield to_user(raw, self._roles.get(str(raw["id"])), keep_raw)


class CanvasCourseList(CanvasStream):
    """GET accounts/:id/courses, unmapped (default states: every course but deleted ones, sub-accounts' included)."""

    unified_name = "course_list"

    def first_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"accounts/{self.provider.account_id}/courses"

    def list_params(self, stream_slice: Mapping[str, Any]) -> dict[str, Any]:
        return {"include[]": ["public_description"]}

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        yield from self.rows_of(response)


class CanvasCourses(CanvasCourseList):
    """The account's courses. A course has no modification time: `updated_at` is null (design.md §4)."""

    unified_name = "courses"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw, base_url = self.config.include_remote_data, self.config.base_url
        for raw in self.rows_of(response):
            yield to_course(raw, base_url, keep_raw)


class CanvasCourseProgress(CanvasStream):
    """GET courses/:id/bulk_user_progress: each student's module progress in one course (user objects with `progress`)."""

    unified_name = "course_progress"
    ignore_not_found = True  # a course deleted after the course list named it

    def first_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"courses/{stream_slice['course_id']}/bulk_user_progress"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        if response.status_code == 404:
            return
        yield from self.rows_of(response)


class CanvasCourseEnrollments(CanvasStream):
    """GET courses/:id/enrollments (student enrollments, every state but deleted and rejected) for each course of
    accounts/:id/courses, with courses/:id/bulk_user_progress for completion, and the account's users for e-mails.

    `updated_at` is the latest of the enrollment's `updated_at`, `last_activity_at` and module `completed_at`.
    Teacher, TA, designer and observer enrollments are not learner enrollments: not asked for, not emitted.
    """

    unified_name = "course_enrollments"
    ignore_not_found = True  # a course deleted after the course list named it

    def __init__(self, provider: Canvas, **kwargs: Any) -> None:
        super().__init__(provider, **kwargs)
        self._people: dict[str, dict[str, Any]] = {}  # written once in partitions(), before any partition is read

    def partitions(self) -> Iterable[dict[str, Any]]:
        self._people = {
            str(raw["id"]): {"id": str(raw["id"]), "name": to_str(raw.get("name")), "emails": primary_emails(to_str(raw.get("email")))}
            for raw in CanvasAccountUsers(self.provider).records_of_slice(SyncMode.full_refresh, {})
        }
        for course in CanvasCourseList(self.provider).records_of_slice(SyncMode.full_refresh, {}):
            yield {"course_id": str(course["id"]), "course_title": to_str(course.get("name")), "course_end_at": iso_to_iso(course.get("end_at"))}

    def pages_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[tuple[requests.Response, Mapping[str, Any]]]:
        # Partitions run on several threads: the course's progress travels in its own slice, never on `self`.
        progress_rows = CanvasCourseProgress(self.provider).records_of_slice(SyncMode.full_refresh, {"course_id": stream_slice["course_id"]})
        progress = {str(row["id"]): row.get("progress") or {} for row in progress_rows}
        yield from super().pages_of_slice(sync_mode, {**stream_slice, "progress": progress})

    def first_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"courses/{stream_slice['course_id']}/enrollments"

    def list_params(self, stream_slice: Mapping[str, Any]) -> dict[str, Any]:
        return {"type[]": [LEARNER_TYPE], "state[]": list(ENROLLMENT_STATES)}

    def parse_response(self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> Iterable[Mapping[str, Any]]:
        if response.status_code == 404:  # vanished course, already logged as a warning by the error handler
            return
        course = stream_slice or {}
        keep_raw, now = self.config.include_remote_data, now_iso()
        for row in self.rows_of(response):
            if is_learner_enrollment(row):
                user_id = str(row.get("user_id"))
                yield to_course_enrollment(row, course, self._people.get(user_id), course.get("progress", {}).get(user_id), now, keep_raw)


def canvas_error_message(response: requests.Response) -> str | None:
    """`{"errors": [{"message"}]}`, `{"errors": {...}}`, `{"error": "..."}`, or the throttle's plain-text line."""
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return text.splitlines()[0][:200] if text and not text.startswith("<") else None
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list):
        messages = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
        return "; ".join(messages) or None
    if isinstance(errors, dict):
        return "; ".join(f"{key}: {value}" for key, value in errors.items()) or None
    return to_str(body.get("error")) or to_str(body.get("message"))


# ---- mappers: raw API v1 payloads in, unified records out -------------------------------------------------------

COURSE_STATUS = {"available": "published", "unpublished": "draft", "created": "draft", "claimed": "draft", "completed": "archived"}


def _split_sortable_name(sortable: str | None) -> tuple[str | None, str | None]:
    """"Last, First" -> (First, Last): older Canvas versions have no first_name/last_name."""
    if not sortable or "," not in sortable:
        return None, None
    last, first = (part.strip() or None for part in sortable.split(",", 1))
    return first, last


def to_user(raw: Mapping[str, Any], role: str | None = None, keep_raw: bool = False) -> dict[str, Any]:
    first, last = to_str(raw.get("first_name")), to_str(raw.get("last_name"))
    if first is None and last is None:
        first, last = _split_sortable_name(to_str(raw.get("sortable_name")))
    return {
        "id": str(raw["id"]),
        "name": to_str(raw.get("name")),
        "first_name": first,
        "last_name": last,
        "username": to_str(raw.get("login_id")),
        "emails": primary_emails(to_str(raw.get("email"))),
        "status": None,  # the list carries no state: suspended logins live on the logins API
        "role": role,
        "locale": to_str(raw.get("locale")),
        "timezone": to_str(raw.get("time_zone")),
        "job_title": None,
        "last_login_at": iso_to_iso(raw.get("last_login")),
        "created_at": iso_to_iso(raw.get("created_at")),
        "updated_at": None,  # no modification time exists (design.md §4): always emitted
        "custom_fields": {key: raw[key] for key in ("sis_user_id", "integration_id") if raw.get(key) is not None},
        "remote_data": dict(raw) if keep_raw else None,
    }


def to_course(raw: Mapping[str, Any], base_url: str, keep_raw: bool = False) -> dict[str, Any]:
    course_id = str(raw["id"])
    account_id = to_str(raw.get("account_id"))
    custom = {key: raw[key] for key in ("sis_course_id", "integration_id", "enrollment_term_id") if raw.get(key) is not None}
    for key in ("start_at", "end_at"):
        if raw.get(key):
            custom[key] = iso_to_iso(raw[key])
    return {
        "id": course_id,
        "title": to_str(raw.get("name")),
        "description": to_str(raw.get("public_description")),
        "code": to_str(raw.get("course_code")),
        "type": "course",
        "status": lookup(COURSE_STATUS, raw.get("workflow_state")),
        "language": to_str(raw.get("locale")),
        "duration_seconds": None,
        "urls": [{"url": f"{base_url}/courses/{course_id}", "type": "web"}],
        "categories": [{"id": account_id, "name": None}] if account_id else [],
        "tags": [],
        "created_at": iso_to_iso(raw.get("created_at")),
        "updated_at": None,  # a course has no modification time (design.md §4): always emitted
        "custom_fields": custom,
        "remote_data": dict(raw) if keep_raw else None,
    }


def is_learner_enrollment(row: Mapping[str, Any]) -> bool:
    """Student enrollments only (custom student roles keep the type); teacher, TA, designer and observer rows give a
    teaching or watching role and are not learner enrollments (design.md §4). Deleted and rejected rows are gone."""
    return row.get("type") == LEARNER_TYPE and row.get("enrollment_state") not in ("deleted", "rejected")


def enrollment_status(row: Mapping[str, Any], progress: Mapping[str, Any] | None, course_end_at: str | None, now: str) -> str:
    """The Canvas rules of providers doc §3.5, top to bottom; the first match wins.

    `enrollment_state: completed` means concluded (course ended or the student was concluded), not finished: completion
    comes from module progress only.
    """
    state = row.get("enrollment_state")
    progress = progress or {}
    if state in ("invited", "creation_pending"):
        return "assigned"
    if state == "inactive":
        return "withdrawn"
    if progress.get("completed_at"):
        return "completed"
    if state == "active":
        started = row.get("last_activity_at") or (to_number(progress.get("requirement_completed_count")) or 0) > 0
        return "in_progress" if started else "enrolled"
    if state == "completed":
        end = iso_to_iso(row.get("end_at")) or course_end_at
        return "expired" if end is not None and end <= now else "unknown"
    return "unknown"


def progress_percent(progress: Mapping[str, Any] | None) -> int | float | None:
    """Completed module requirements over all of them; null when the course has none (nothing to measure)."""
    if not progress:
        return None
    total, done = to_number(progress.get("requirement_count")), to_number(progress.get("requirement_completed_count"))
    if not total or done is None:
        return None
    percent = round(done * 100 / total, 2)
    return to_percent(int(percent) if percent.is_integer() else percent)


def to_course_enrollment(
    row: Mapping[str, Any],
    course: Mapping[str, Any],
    person: Mapping[str, Any] | None,
    progress: Mapping[str, Any] | None,
    now: str,
    keep_raw: bool = False,
) -> dict[str, Any]:
    """A row of courses/:id/enrollments; `course` is the slice (id, title, end), `person` the users join (e-mails)."""
    embedded = row.get("user") if isinstance(row.get("user"), dict) else {}
    grades = row.get("grades") if isinstance(row.get("grades"), dict) else {}
    completed_at = iso_to_iso((progress or {}).get("completed_at"))
    last_activity = iso_to_iso(row.get("last_activity_at"))
    created_at = iso_to_iso(row.get("created_at"))
    html_url = to_str(row.get("html_url"))
    custom: dict[str, Any] = {"enrollment_state": row.get("enrollment_state"), "role": row.get("role")}
    if row.get("course_section_id") is not None:
        custom["section_id"] = str(row["course_section_id"])
    if grades.get("final_score") is not None:
        custom["final_score"] = grades["final_score"]
    time_spent = to_number(row.get("total_activity_time"))
    return {
        "id": str(row["id"]),
        "user": {
            "id": str(row["user_id"]),
            "name": (person or {}).get("name") or to_str(embedded.get("name")),
            "emails": (person or {}).get("emails") or [],
        },
        "course": {"id": str(row.get("course_id") or course.get("course_id")), "title": course.get("course_title")},
        "status": enrollment_status(row, progress, course.get("course_end_at"), now),
        "assigned_at": None,
        "due_at": None,  # end_at ends access, it is not a due date
        "enrolled_at": iso_to_iso(row.get("start_at")) or created_at,
        "started_at": None,
        "last_activity_at": last_activity,
        "completed_at": completed_at,
        "progress_percent": progress_percent(progress),
        "time_spent_seconds": int(time_spent) if time_spent is not None else None,
        "score": to_number(grades.get("current_score")),
        "is_mandatory": None,
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": [{"url": html_url, "type": "web"}] if html_url else [],
        "created_at": created_at,
        "updated_at": latest(iso_to_iso(row.get("updated_at")), last_activity, completed_at),
        "custom_fields": custom,
        "remote_data": {**row, "progress": progress} if keep_raw else None,
    }

"""Docebo (https://{platform}.docebosaas.com): users, courses and account-wide enrollments over the v1 REST API.

Facts: ../shared/docs/providers-talentlms-ispring-docebo.md §3 and §4; what differs is in docs/providers/docebo.md.
- Auth: OAuth2 at `{base_url}/oauth2/token` with `scope=api`; client credentials, or the password grant when a
  username and password are configured, through the shared `OAuth2TokenAuthenticator` (renewed before it expires
  and on a 401; the token request retried like any request).
- Paging: `page` (1-based) and `page_size` (at most 200) in a `{"data": {"items", "has_more_data", "cursor",
  "current_page", "total_page_count"}}` envelope; a returned `cursor` is sent back, and every list is sorted on a
  unique key so that pages neither repeat nor skip records.
- Incremental: `updated_from` on courses and enrollments (server-side); `/manage/v1/user` documents no such filter,
  so users are read in full and filtered here.
- Dates: `YYYY-MM-DD HH:MM:SS` without a zone, read as UTC; `0000-00-00…` and "" are unset.
- Rate limit: about 1,000 calls an hour; 429 and 503 are retried with backoff (`Retry-After` when given), one
  request at a time.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Iterator, Mapping, MutableMapping, Optional

import orjson
import requests
from airbyte_cdk.models import SyncMode

from ..base import LmsProvider, LmsStream, config_error, parsed_once
from ..http_policy import CONNECT_TIMEOUT
from ..oauth import OAuth2TokenAuthenticator
from ..unified import full_name, iso_to_iso, lookup, now_iso, primary_emails, to_bool, to_number, to_percent, to_str

# The documented maximum page size of Docebo list endpoints (providers doc §3.3).
PAGE_SIZE = 200
TOKEN_PATH = "/oauth2/token"


class Docebo(LmsProvider):
    provider_type = "docebo"
    title = "Docebo"
    base_url_example = "https://acme.docebosaas.com"
    spec_required = ["client_id", "client_secret"]
    spec_properties = {
        "client_id": {
            "type": "string",
            "title": "Client ID",
            "description": "Of an OAuth2 app under Admin menu → API and SSO → API credentials.",
            "order": 2,
        },
        "client_secret": {
            "type": "string",
            "title": "Client secret",
            "description": "The OAuth2 app's client secret.",
            "airbyte_secret": True,
            "order": 3,
        },
        "username": {
            "type": "string",
            "title": "Username",
            "description": "Optional: with a password, the token is requested with the password grant as this user "
            "(a Superadmin sees every user and enrollment). Without, the client credentials grant is used.",
            "order": 4,
        },
        "password": {
            "type": "string",
            "title": "Password",
            "description": "The password of that user; only with a username.",
            "airbyte_secret": True,
            "order": 5,
        },
    }
    credential_hint = (
        "Check provider.client_id and provider.client_secret (and provider.username/provider.password when the "
        "password grant is used), and that the token's user may read users, courses and enrollments."
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/"
        self._people: dict[str, dict[str, Any]] | None = None

    def make_authenticator(self) -> OAuth2TokenAuthenticator:
        provider = self.config.provider
        username, password = to_str(provider.get("username")), to_str(provider.get("password"))
        if bool(username) != bool(password):
            raise config_error(
                "provider.username and provider.password go together: give both for the password grant, "
                "or neither for the client credentials grant."
            )
        grant = "password" if username and password else "client_credentials"
        return OAuth2TokenAuthenticator(
            f"{self.config.base_url}{TOKEN_PATH}",
            str(provider["client_id"]),
            str(provider["client_secret"]),
            provider_title=self.title,
            credential_hint=self.credential_hint,
            grant_type=grant,
            extra_body={"scope": "api", **({"username": username, "password": password} if grant == "password" else {})},
            describe_error=token_error_text,
            rejection_hint=lambda response: rejection_hint(response, grant),
            timeout=(CONNECT_TIMEOUT, self.config.read_timeout),
        )

    def streams(self) -> list[LmsStream]:
        return [DoceboUsers(self), DoceboCourses(self), DoceboCourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        self.authenticator.max_retries = 1  # like the check stream itself: answer quickly
        return DoceboCheck(self, max_retries=1)

    def people(self) -> dict[str, dict[str, Any]]:
        """user id -> {id, name, emails}: the enrollment join, read once per sync and only when needed."""
        if self._people is None:
            self._people = {
                user["id"]: {"id": user["id"], "name": user["name"], "emails": user["emails"]}
                for user in DoceboUsers(self).records_of_slice(SyncMode.full_refresh, {})
            }
        return self._people


def token_error_text(response: requests.Response) -> str | None:
    try:
        return oauth_error_text(orjson.loads(response.content))
    except orjson.JSONDecodeError:
        return None


def rejection_hint(response: requests.Response, grant: str) -> str:
    """What to fix for a refused token request (400/401/403), by its RFC 6749 error code."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if error == "invalid_grant" and grant == "password":
        return "Check provider.username and provider.password, and that this user is active."
    if error in ("unauthorized_client", "unsupported_grant_type"):
        return f"Enable the '{grant}' grant type on the OAuth2 app (Admin menu → API and SSO → API credentials)."
    if error == "invalid_scope":
        return "The OAuth2 app must allow the 'api' scope."
    if not isinstance(body, dict):
        return "Check provider.base_url: it should be the Docebo platform URL, e.g. https://acme.docebosaas.com."
    return "Check provider.client_id and provider.client_secret (Admin menu → API and SSO → API credentials)."


def oauth_error_text(body: Any) -> str | None:
    """An RFC 6749 token error (`error`, `error_description`) or a Docebo API error (`message`) as one line."""
    if not isinstance(body, dict):
        return None
    parts = [str(body[key]) for key in ("error", "error_description") if isinstance(body.get(key), str) and body[key]]
    if parts:
        return ": ".join(parts)
    message = body.get("message")
    if isinstance(message, list):  # some endpoints answer {"message": ["...", ...]}
        message = "; ".join(str(item) for item in message)
    return str(message) if message else None


class DoceboStream(LmsStream):
    """A Docebo list endpoint: paging in the `data` envelope, a stable sort, and `updated_from` where honoured."""

    refresh_on_401 = True  # a token that expired mid-sync is renewed once, then the request is retried
    api_path: ClassVar[str]
    # Sort on a unique key so that pages neither repeat nor skip records (providers doc §3.3, pitfall 4).
    sort_params: ClassVar[dict[str, str]] = {}
    page_size: ClassVar[int] = PAGE_SIZE

    def __init__(self, provider: Docebo, **kwargs: Any) -> None:
        super().__init__(provider, **kwargs)
        self._updated_from: str | None = None

    def path(self, **_: Any) -> str:
        return self.api_path

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        # request_params gets no sync mode from the CDK: the lower bound is taken here, once per read.
        since = self.since_on_server(sync_mode)  # None in a deletion sweep: everything is listed then
        self._updated_from = since.replace("T", " ").rstrip("Z") if since else None
        yield from super().records_of_slice(sync_mode, stream_slice)

    def request_params(self, stream_state: Any = None, stream_slice: Any = None, next_page_token: Optional[Mapping[str, Any]] = None) -> MutableMapping[str, Any]:
        params: dict[str, Any] = {"page": 1, "page_size": self.page_size, **self.sort_params}
        if self._updated_from:
            params["updated_from"] = self._updated_from  # inclusive; the base keeps the same >= rule
        if next_page_token:
            params.update(next_page_token)
        return params

    def describe_error(self, response: requests.Response) -> str | None:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return response.text[:200] if response.text else None
        return oauth_error_text(body)

    def envelope(self, response: requests.Response) -> Mapping[str, Any]:
        """The `data` object of a list answer, parsed once per response (paging and records both need it)."""
        return parsed_once(response, self._parse_envelope)

    def _parse_envelope(self, response: requests.Response) -> Mapping[str, Any]:
        body = self.json_of(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise self.malformed(response, "expected {\"data\": {\"items\": [...]}}; is provider.base_url a Docebo platform?")
        return data

    def items(self, response: requests.Response, id_key: str) -> list[Mapping[str, Any]]:
        items = self.envelope(response)["items"]
        for item in items:
            if not isinstance(item, dict) or item.get(id_key) in (None, ""):
                raise self.malformed(response, f"an item has no {id_key}")
        return items

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        data = self.envelope(response)
        if not to_bool(data.get("has_more_data")):
            return None
        if not data["items"]:
            raise self.malformed(response, "has_more_data is true on an empty page")
        current = to_number(data.get("current_page"))
        if current is None:
            current = to_number(_query_value(response, "page")) or 1
        total = to_number(data.get("total_page_count"))
        if total is not None and current >= total:
            return None
        token: dict[str, Any] = {"page": int(current) + 1}
        if data.get("cursor"):
            token["cursor"] = str(data["cursor"])  # pins the search between pages
        return token


def _query_value(response: requests.Response, name: str) -> str | None:
    from urllib.parse import parse_qs, urlsplit

    values = parse_qs(urlsplit(response.request.url or "").query).get(name) if response.request is not None else None
    return values[0] if values else None


class DoceboCheck(DoceboStream):
    """GET /manage/v1/user, one user: the cheap authenticated call of `check` (the token request comes first)."""

    unified_name = "check"
    api_path = "manage/v1/user"
    page_size = 1

    def next_page_token(self, response: requests.Response) -> None:
        return None

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        yield from self.items(response, "user_id")


class DoceboUsers(DoceboStream):
    """GET /manage/v1/user: every user the token's owner may see; no documented `updated_from`, so filtered here."""

    unified_name = "users"
    api_path = "manage/v1/user"
    # username is unique per platform and a documented sort_attr (user_id is not among the documented options).
    sort_params = {"sort_attr": "username", "sort_dir": "asc"}

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        for raw in self.items(response, "user_id"):
            yield to_user(raw, keep_raw)


class DoceboCourses(DoceboStream):
    """GET /learn/v1/courses?updated_from=…: courses changed since the cursor (server-side)."""

    unified_name = "courses"
    api_path = "learn/v1/courses"
    sort_params = {"sort_by": "id_course", "sort_by_direction": "asc"}
    server_side_filter = True

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        base_url = self.config.base_url
        for raw in self.items(response, "id_course"):
            yield to_course(raw, base_url, keep_raw)


class DoceboCourseEnrollments(DoceboStream):
    """GET /learn/v1/enrollments?updated_from=…: every learner's course enrollments, account-wide, changed since
    the cursor (server-side); names and e-mails joined from /manage/v1/user, read only if a row comes.

    The list documents no sort parameter for this endpoint; `get_cursor=1` asks for the cursor that pins the search
    from page to page. Learning-plan rows (`type: learning_plan`) are not course enrollments and are not emitted,
    nor are tutor/instructor/coach rows.
    """

    unified_name = "course_enrollments"
    pair_id = True  # ids are "{user_id}:{course_id}": a tombstone still names both
    api_path = "learn/v1/enrollments"
    sort_params = {"get_cursor": "1"}
    server_side_filter = True

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        now = now_iso()
        for row in self.items(response, "id"):
            if row.get("user_id") in (None, ""):
                raise self.malformed(response, "an item has no user_id")
            if is_course_learner_row(row):
                yield to_course_enrollment(row, self.provider.people().get(str(row["user_id"])), now, keep_raw)


# ---- mappers: raw v1 items in, unified records out --------------------------------------------------------------

def docebo_date(value: Any) -> str | None:
    """`YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC, no zone) to ISO UTC; zero dates and "" are unset."""
    if isinstance(value, str) and value.startswith("0000-00-00"):
        return None
    return iso_to_iso(value)


USER_STATUS = {"1": "active", "0": "suspended"}
# `level` as a name or as the group id of the 2017 API (/framework/level/godadmin = 3, admin = 4, user = 6).
# "admin" is Docebo's Power User, a scoped administrator: manager in the unified roles.
USER_ROLE = {"godadmin": "admin", "superadmin": "admin", "3": "admin", "poweruser": "manager", "power_user": "manager",
             "admin": "manager", "4": "manager", "user": "learner", "6": "learner"}
_USER_FIELD_PREFIX = "field_"


def to_user(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    first, last = to_str(raw.get("first_name")), to_str(raw.get("last_name"))
    status = lookup(USER_STATUS, raw.get("status"))
    if status == "active" and to_bool(raw.get("expired")):
        status = "inactive"
    return {
        "id": str(raw["user_id"]),
        "name": to_str(raw.get("fullname")) or full_name(first, last),
        "first_name": first,
        "last_name": last,
        "username": to_str(raw.get("username")),
        "emails": primary_emails(to_str(raw.get("email"))),
        "status": status,
        "role": lookup(USER_ROLE, raw.get("level"), default="other"),
        "locale": to_str(raw.get("lang_code")) or to_str(raw.get("language")),
        "timezone": to_str(raw.get("timezone")),
        "job_title": None,  # not a standard user field; a platform may keep it in a field_{id}
        "last_login_at": docebo_date(raw.get("last_access_date")),
        "created_at": docebo_date(raw.get("creation_date")),
        "updated_at": docebo_date(raw.get("last_update")),
        "custom_fields": {key: value for key, value in raw.items() if key.startswith(_USER_FIELD_PREFIX)},
        "remote_data": dict(raw) if keep_raw else None,
    }


def to_course(raw: Mapping[str, Any], base_url: str, keep_raw: bool = False) -> dict[str, Any]:
    course_id = str(raw["id_course"])
    urls = []
    if raw.get("slug_name") and raw.get("course_type"):
        urls.append({"url": f"{base_url}/learn/course/internal/view/{raw['course_type']}/{course_id}/{raw['slug_name']}", "type": "web"})
    if raw.get("img_url"):
        urls.append({"url": raw["img_url"], "type": "image"})
    category = raw.get("category")
    categories = []
    if isinstance(category, dict) and category.get("id") not in (None, "", 0):
        categories.append({"id": str(category["id"]), "name": to_str(category.get("name"))})
    duration = to_number(raw.get("duration"))
    return {
        "id": course_id,
        "title": to_str(raw.get("name")),
        "description": to_str(raw.get("description")),
        "code": to_str(raw.get("code")),
        "type": "course",  # elearning, classroom and webinar are all courses; the subtype stays in remote_data
        "status": "unknown",  # the list carries no publication status
        "language": to_str(raw.get("lang_code")) or to_str(raw.get("language")),
        "duration_seconds": int(duration) if duration else None,  # seconds per the API's model docs; 0 means unset
        "urls": urls,
        "categories": categories,
        "tags": [],
        "created_at": None,  # not in the list
        "updated_at": docebo_date(raw.get("date_last_updated")),
        "custom_fields": {},
        "remote_data": dict(raw) if keep_raw else None,
    }


# Docebo's enrollment statuses (API strings and the legacy numeric codes) -> unified (providers doc §4.2).
ENROLLMENT_STATUS = {
    "subscribed": "enrolled", "enrolled": "enrolled", "not_started": "enrolled", "0": "enrolled",
    "in_progress": "in_progress", "in progress": "in_progress", "1": "in_progress",
    "completed": "completed", "2": "completed",
    "waiting": "assigned", "waiting_list": "assigned", "-2": "assigned",
    "to_confirm": "assigned", "enrollment to confirm": "assigned", "-1": "assigned",
    "overbooking": "assigned", "4": "assigned",
    "suspended": "withdrawn", "3": "withdrawn",
}
# Enrollment levels that give a teaching or coaching role, not a learner enrollment (design.md §4).
TEACHING_LEVELS = frozenset({"tutor", "instructor", "coach", "mentor", "4", "6", "7"})


def is_course_learner_row(row: Mapping[str, Any]) -> bool:
    if str(row.get("type") or "").lower() == "learning_plan":
        return False  # the id is a learning plan's, not a course's: it would break the courses join
    return str(row.get("level") or "").strip().lower() not in TEACHING_LEVELS


def enrollment_status(row: Mapping[str, Any], now: str) -> str:
    status = lookup(ENROLLMENT_STATUS, row.get("status"))
    if status != "completed":
        expires = docebo_date(row.get("enroll_end_date"))
        if expires is not None and expires < now:
            return "expired"
    return status


def to_course_enrollment(row: Mapping[str, Any], person: Mapping[str, Any] | None, now: str, keep_raw: bool = False) -> dict[str, Any]:
    """A /learn/v1/enrollments item: `id` is the course's id; `person` is the /manage/v1/user join."""
    user_id, course_id = str(row["user_id"]), str(row["id"])
    status = enrollment_status(row, now)
    began = docebo_date(row.get("enroll_begin_date"))
    raw_status = lookup(ENROLLMENT_STATUS, row.get("status"))
    # The list has no progress field: a finished course is 100 %, a not-started one 0 %, anything else unknown.
    progress = 100 if raw_status == "completed" else 0 if raw_status == "enrolled" else None
    url = to_str(row.get("url"))
    time_spent = to_number(row.get("total_time"))
    return {
        "id": f"{user_id}:{course_id}",
        "user": {"id": user_id, "name": person["name"] if person else None, "emails": person["emails"] if person else []},
        "course": {"id": course_id, "title": to_str(row.get("name"))},
        "status": status,
        "assigned_at": None,
        "due_at": None,  # enroll_end_date is the end of access (expiry), not a due date
        "enrolled_at": began,
        "started_at": None,
        "last_activity_at": None,
        "completed_at": docebo_date(row.get("course_complete_date")),
        "progress_percent": to_percent(progress),
        "time_spent_seconds": int(time_spent) if time_spent is not None else None,
        "score": to_number(row.get("score")),
        "is_mandatory": None,
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": [{"url": url, "type": "launch"}] if url else [],
        "created_at": began,
        "updated_at": docebo_date(row.get("date_last_updated")),
        "custom_fields": {},
        "remote_data": dict(row) if keep_raw else None,
    }

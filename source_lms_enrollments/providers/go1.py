"""Go1 (https://gateway.go1.com, REST API version 2025-01-01): learners, learning objects and enrollments.

Facts (sources and what is unconfirmed: docs/providers/go1.md):
- Auth: OAuth2 client credentials at `token_url` (default https://auth.go1.com/oauth/token, another host than the
  API); tokens last 12 hours and are renewed ahead of expiry and on a 401 by the shared `OAuth2TokenAuthenticator`.
- Every call sends `Api-Version: 2025-01-01` (versions are dated and chosen per request by that header).
- Lists answer `{"total", "hits": [...]}`. `/enrollments` pages with `offset`/`limit` (limit 1-50) and no scroll;
  offset paging "cannot exceed 10,000 results", so past that the walk restarts from the last `updated_time` seen
  (sorted ascending, `update_time_gte`), skipping the ids already read at that instant.
  `/learning-objects` scrolls: `use_scroll=true` (limit up to 5,000) and `scroll_id` = the previous
  `next_scroll_id`, valid 5 minutes.
- Incremental on the server: `/enrollments?update_time_gte=` and `/learning-objects?updated_time[min]=`.
- Users: `GET /user-accounts`, which the 2025-01-01 reference does not list; its shape is known from a connector
  built against the live API (`Api-Version: 2022-07-01`). No filter: read in full, filtered here.
- Errors: `{"ref", "error_code", "message"}`. No rate limit is documented: 429 is retried as everywhere.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Iterator, Mapping, MutableMapping, Optional
from urllib.parse import parse_qs, urlsplit

import orjson
import requests
from airbyte_cdk.models import SyncMode

from ..base import LmsProvider, LmsStream, checked_base_url, parsed_once
from ..http_policy import CONNECT_TIMEOUT
from ..oauth import OAuth2TokenAuthenticator
from ..unified import full_name, iso_to_iso, latest, lookup, now_iso, primary_emails, to_bool, to_number, to_percent, to_str

API_VERSION = "2025-01-01"
# /user-accounts is not in the 2025-01-01 reference; it is known to answer under this version (docs/providers/go1.md).
USER_ACCOUNTS_API_VERSION = "2022-07-01"
DEFAULT_TOKEN_URL = "https://auth.go1.com/oauth/token"
# /enrollments: "A limit on the number of objects to be returned, between 1 and 50."
ENROLLMENT_PAGE_SIZE = 50
# "Using the limit and offset parameters cannot exceed 10,000 results."
OFFSET_RESULTS_LIMIT = 10_000
# /learning-objects: "When `use_scroll` is activated, the maximum limit increases to 5000."
SCROLL_PAGE_SIZE = 5000
# Lifecycle states listed by /learning-objects: draft and published together, retired and removed each on their
# own ("only `draft` and `published` states can be filtered in the same request").
LIFECYCLE_LISTINGS = (("draft", "published"), ("retired",), ("removed",))
# What the course rows carry beyond `core` (the default): state, tags and topics.
LO_INCLUDES = ["core", "lifecycle", "tags", "topics"]


class Go1(LmsProvider):
    provider_type = "go1"
    title = "Go1"
    default_base_url = "https://gateway.go1.com"
    base_url_example = "https://gateway.go1.com"
    spec_required = ["client_id", "client_secret"]
    spec_properties = {
        "token_url": {
            "type": "string",
            "title": "Token URL",
            "description": "Go1's OAuth2 token endpoint (another host than the API).",
            "default": DEFAULT_TOKEN_URL,
            "order": 2,
        },
        "client_id": {
            "type": "string",
            "title": "Client ID",
            "description": "Of a Go1 OAuth2 client of the portal (client credentials), allowed to read enrollments and learning objects.",
            "order": 3,
        },
        "client_secret": {
            "type": "string",
            "title": "Client secret",
            "description": "The OAuth2 client's secret.",
            "airbyte_secret": True,
            "order": 4,
        },
    }
    credential_hint = (
        "Check provider.client_id and provider.client_secret (an OAuth2 client of the Go1 portal, client "
        "credentials grant, with the enrollment.read and lo.read scopes)."
    )
    # The three course listings are read one after the other: Go1 documents no concurrency or rate limit.
    default_concurrency = 1

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/"

    def make_authenticator(self) -> OAuth2TokenAuthenticator:
        provider = self.config.provider
        token_url = checked_base_url(provider.get("token_url") or DEFAULT_TOKEN_URL, "provider.token_url")
        return OAuth2TokenAuthenticator(
            token_url,
            str(provider["client_id"]).strip(),
            str(provider["client_secret"]),
            provider_title=self.title,
            credential_hint=self.credential_hint + " Check provider.token_url too.",
            timeout=(CONNECT_TIMEOUT, self.config.read_timeout),
        )

    def streams(self) -> list[LmsStream]:
        return [Go1Users(self), Go1Courses(self), Go1CourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        # The token, then one enrollment: proves the client, its enrollment.read scope and the API host.
        return Go1CourseEnrollments(self, max_retries=1, page_size=1, one_page=True)


def error_text(response: requests.Response) -> Optional[str]:
    """Go1's error envelope `{ref, error_code, message}` as "error_code: message"; other bodies as they are."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        text = response.text.strip()
        return text[:200] if text else None
    if isinstance(body, Mapping):
        parts = [str(body[key]) for key in ("error_code", "message", "error", "error_description") if body.get(key)]
        if parts:
            return ": ".join(parts).rstrip(".")  # the error handler ends the sentence
    return None


def _query(response: requests.Response, name: str) -> Optional[str]:
    request = response.request
    values = parse_qs(urlsplit(request.url or "").query).get(name) if request is not None else None
    return values[0] if values else None


class Go1Stream(LmsStream):
    """A Go1 list: `Api-Version` header, `{total, hits}` body, Go1's error envelope, tokens renewed on a 401."""

    refresh_on_401 = True
    api_version: ClassVar[str] = API_VERSION
    id_key: ClassVar[str] = "id"  # what every hit must carry

    def request_headers(self, **_: Any) -> Mapping[str, Any]:
        return {"Api-Version": self.api_version, "Accept": "application/json"}

    def describe_error(self, response: requests.Response) -> Optional[str]:
        return error_text(response)

    def page(self, response: requests.Response) -> Mapping[str, Any]:
        return parsed_once(response, self._parse_page)

    def _parse_page(self, response: requests.Response) -> Mapping[str, Any]:
        body = self.json_of(response)
        hits = body.get("hits") if isinstance(body, dict) else None
        if not isinstance(hits, list) or not all(isinstance(hit, dict) and hit.get(self.id_key) not in (None, "") for hit in hits):
            raise self.malformed(response, f"expected {{\"total\", \"hits\": [...]}} with an {self.id_key} on every hit; is provider.base_url the Go1 API (https://gateway.go1.com)?")
        total = to_number(body.get("total"))
        return {"hits": hits, "total": int(total) if total is not None else None, "next_scroll_id": to_str(body.get("next_scroll_id"))}


class OffsetWindowStream(Go1Stream):
    """Offset/limit paging over a list sorted by a modification time, in windows under the API's offset ceiling.

    Generic: `page_size` and `offset_results_limit` are the API's limits, `time_field` the sorted timestamp and
    `since_param` its ">=" filter. Within a window, `offset` advances by `limit`; when the next page would pass the
    ceiling, a new window starts at the last time seen (`since_param` = that time, offset 0) and the ids already
    read at that very time are skipped. A window whose every row shares one time cannot move on: an error, not a loop.
    """

    page_size: ClassVar[int]
    offset_results_limit: ClassVar[Optional[int]]  # None: no ceiling documented, plain offset paging
    time_field: ClassVar[str]
    since_param: ClassVar[Optional[str]]

    def __init__(self, provider: LmsProvider, max_retries: Optional[int] = None, page_size: Optional[int] = None, one_page: bool = False) -> None:
        super().__init__(provider, **({"max_retries": max_retries} if max_retries is not None else {}))
        if page_size is not None:
            self.page_size = page_size
        self.one_page = one_page
        self._start_window(None)

    def _start_window(self, since: Optional[str]) -> None:
        self._window_since = since  # this window's lower bound, when it is not the read's own
        self._skip: set[str] = set()  # ids already read at exactly `since`
        self._tail_time: Optional[str] = None  # the last time seen in this window, and the ids read at it
        self._tail_ids: set[str] = set()

    def list_params(self) -> dict[str, Any]:
        return {}

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        self._start_window(None)
        self._since = self.server_since(sync_mode)
        yield from super().records_of_slice(sync_mode, stream_slice)

    def server_since(self, sync_mode: SyncMode) -> Optional[str]:
        return None

    def request_params(self, stream_state: Any = None, stream_slice: Any = None, next_page_token: Optional[Mapping[str, Any]] = None) -> MutableMapping[str, Any]:
        token = next_page_token or {}
        params: dict[str, Any] = {"limit": self.page_size, "offset": token.get("offset", 0), **self.list_params()}
        since = token.get("since") or getattr(self, "_since", None)
        if since and self.since_param:
            params[self.since_param] = since
        return params

    def window_hits(self, response: requests.Response) -> list[Mapping[str, Any]]:
        """The page's rows, less those a previous window already read."""
        hits = self.page(response)["hits"]
        if not self._skip:
            return hits
        since = self._window_since
        return [hit for hit in hits if not (str(hit[self.id_key]) in self._skip and iso_to_iso(hit.get(self.time_field)) == since)]

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        if self.one_page:
            return None
        page = self.page(response)
        hits, total = page["hits"], page["total"]
        offset = int(_query(response, "offset") or 0)
        if len(hits) < self.page_size or (total is not None and offset + len(hits) >= total):
            return None
        following = offset + self.page_size
        if self.offset_results_limit is None or self.since_param is None:
            return {"offset": following}
        for hit in hits:  # the rows come sorted by time: remember the ids at the latest time
            stamp = iso_to_iso(hit.get(self.time_field))
            if stamp is None:
                raise self.malformed(response, f"hit {hit.get(self.id_key)!r} has no {self.time_field}")
            if stamp != self._tail_time:
                self._tail_time, self._tail_ids = stamp, set()
            self._tail_ids.add(str(hit[self.id_key]))
        if following + self.page_size <= self.offset_results_limit:
            return {"offset": following, "since": self._window_since}
        # The ceiling: a new window from the last time seen.
        if self._tail_time is None or self._tail_time == self._window_since:
            raise self.malformed(
                response,
                f"more than {self.offset_results_limit} rows share {self.time_field} {self._tail_time}; offset paging cannot get past them",
            )
        tail_time, tail_ids = self._tail_time, set(self._tail_ids)
        self._start_window(tail_time)
        self._skip = tail_ids
        return {"offset": 0, "since": tail_time}


class Go1CourseEnrollments(OffsetWindowStream):
    """GET /enrollments?sort=updated_time&order=asc&update_time_gte=…: learners' enrollments changed since the cursor
    (server-side), in pages of 50 under the 10,000-result offset ceiling.

    Go1 lists parent enrollments only (a course's or a standalone learning object's) and has no teaching roles, so
    every row is a learner enrollment. `updated_time` is Go1's own modification time."""

    unified_name = "course_enrollments"
    server_side_filter = True
    page_size = ENROLLMENT_PAGE_SIZE
    offset_results_limit = OFFSET_RESULTS_LIMIT
    time_field = "updated_time"
    since_param = "update_time_gte"

    def path(self, **_: Any) -> str:
        return "enrollments"

    def list_params(self) -> dict[str, Any]:
        # Ascending modification time: the window walk needs it, and a row changed while we page moves to the end.
        return {"sort": "updated_time", "order": "asc"}

    def server_since(self, sync_mode: SyncMode) -> Optional[str]:
        return self.since_on_server(sync_mode)  # None in full refresh and in a deletion sweep

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        now = now_iso()
        yield from self.mapped(response, lambda hit: to_course_enrollment(hit, now, keep_raw), self.window_hits(response))


class Go1Users(OffsetWindowStream):
    """GET /user-accounts: every user account of the portal, active or not; no documented filter, so read in full
    and filtered here on `updated_time`.

    Not in Go1's 2025-01-01 reference: the path, its `{total, hits}` shape and its fields come from Airbyte's
    community Go1 connector (built against the live API with `Api-Version: 2022-07-01`, which is sent here too).
    `id` is the account id that enrollments name as `user_account_id` and `assigner_account_id`."""

    unified_name = "users"
    api_version = USER_ACCOUNTS_API_VERSION
    page_size = ENROLLMENT_PAGE_SIZE
    offset_results_limit = None  # no ceiling documented for this list
    time_field = "updated_time"
    since_param = None

    def path(self, **_: Any) -> str:
        return "user-accounts"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda hit: to_user(hit, keep_raw), self.window_hits(response))


class Go1Courses(Go1Stream):
    """GET /learning-objects?collection=subscribe&use_scroll=true: the learning objects available on the portal
    that a learner can be enrolled in (courses and standalone items), one listing per lifecycle state; changed
    since the cursor on the server (`updated_time[min]`)."""

    unified_name = "courses"
    server_side_filter = True
    id_key = "lo_id"

    def __init__(self, provider: LmsProvider, **kwargs: Any) -> None:
        super().__init__(provider, **kwargs)
        self._since: Optional[str] = None
        self._read = 0

    def path(self, **_: Any) -> str:
        return "learning-objects"

    @property
    def concurrency(self) -> int:
        return 1  # one scroll at a time: the scroll state lives on the stream

    def partitions(self) -> Iterable[dict[str, Any]]:
        for states in LIFECYCLE_LISTINGS:
            yield {"states": list(states)}

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        self._since = self.since_on_server(sync_mode)
        self._read = 0
        yield from super().records_of_slice(sync_mode, stream_slice)

    def request_params(self, stream_state: Any = None, stream_slice: Any = None, next_page_token: Optional[Mapping[str, Any]] = None) -> MutableMapping[str, Any]:
        params: dict[str, Any] = {
            "collection": "subscribe",
            "use_scroll": "true",
            "limit": SCROLL_PAGE_SIZE,
            "state[]": list((stream_slice or {}).get("states") or LIFECYCLE_LISTINGS[0]),
            "include[]": LO_INCLUDES,
        }
        if self._since:
            params["updated_time[min]"] = self._since  # inclusive
        if next_page_token:
            params.update(next_page_token)
        return params

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        page = self.page(response)
        self._read += len(page["hits"])
        scroll_id = page["next_scroll_id"]
        if not page["hits"] or not scroll_id or (page["total"] is not None and self._read >= page["total"]):
            return None
        if scroll_id == _query(response, "scroll_id"):
            raise self.malformed(response, "next_scroll_id repeats the scroll_id just sent")
        return {"scroll_id": scroll_id}

    def parse_response(self, response: requests.Response, stream_slice: Optional[Mapping[str, Any]] = None, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        listed_state = ((stream_slice or {}).get("states") or [None])[0]
        hits = [hit for hit in self.page(response)["hits"] if is_enrollable(hit)]
        yield from self.mapped(response, lambda hit: to_course(hit, listed_state, keep_raw), hits)

    def marked_deleted(self, record: Mapping[str, Any]) -> bool:
        """A learning object in the `removed` lifecycle state: still listed (so enrollments keep their join), deleted."""
        return (record.get("custom_fields") or {}).get("lifecycle_state") == "removed"


# ---- mappers: documented list hits in, unified records out --------------------------------------------------------

# Go1 role names (portal roles); the most privileged one a user holds wins.
USER_ROLE = {"administrator": "admin", "admin": "admin", "content administrator": "admin", "manager": "manager",
             "tutor": "instructor", "assessor": "instructor", "author": "instructor", "student": "learner",
             "learner": "learner"}
_ROLE_RANK = ("admin", "manager", "instructor", "learner", "other")


def user_role(roles: Any) -> str:
    found = {lookup(USER_ROLE, str(item.get("role") or "").strip().lower(), default="other")
             for item in roles if isinstance(item, Mapping)} if isinstance(roles, list) else set()
    return next((role for role in _ROLE_RANK if role in found), "learner" if not found else "other")


def to_user(hit: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    """A /user-accounts hit: the portal account, with the person under `user`."""
    person = hit.get("user") if isinstance(hit.get("user"), Mapping) else {}
    first, last = to_str(person.get("given_name")), to_str(person.get("family_name"))
    active = to_bool(hit.get("status"))
    custom = {"account_guid": to_str(hit.get("account_guid")), "user_guid": to_str(person.get("user_guid")),
              "portal_id": to_str(hit.get("portal_id"))}
    return {
        "id": str(hit["id"]),
        "name": full_name(first, last),
        "first_name": first,
        "last_name": last,
        "username": to_str(person.get("username")),
        "emails": primary_emails(to_str(person.get("email"))),
        "status": "unknown" if active is None else "active" if active else "inactive",
        "role": user_role(hit.get("roles")),
        "locale": to_str(hit.get("locale")),
        "timezone": None,
        "job_title": None,
        "last_login_at": iso_to_iso(hit.get("logged_in_time")),
        "created_at": iso_to_iso(hit.get("created_time")),
        # The account's and the person's own times: a rename moves the person's, a role or status the account's.
        "updated_at": latest(iso_to_iso(hit.get("updated_time")), iso_to_iso(person.get("updated_time"))),
        "custom_fields": {key: value for key, value in custom.items() if value is not None},
        "remote_data": dict(hit) if keep_raw else None,
    }


COURSE_TYPE = {"course": "course", "playlist": "path"}
COURSE_STATUS = {"draft": "draft", "published": "published", "retired": "archived", "removed": "archived"}


def is_enrollable(hit: Mapping[str, Any]) -> bool:
    """A course, or a standalone learning object: what /enrollments can hold (it lists parent enrollments only).
    A module or an item that lives only inside a course is not enrollable on its own."""
    core = hit.get("core") if isinstance(hit.get("core"), Mapping) else {}
    if str(core.get("type") or "").lower() == "course":
        return True
    return to_bool(core.get("standalone")) is not False


def _names(items: Any) -> list[dict[str, Any]]:
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and item.get("name"):
            out.append({"id": to_str(item.get("id")) or str(item["name"]), "name": str(item["name"])})
        elif isinstance(item, str) and item:
            out.append({"id": item, "name": item})
    return out


def to_course(hit: Mapping[str, Any], listed_state: Optional[str] = None, keep_raw: bool = False) -> dict[str, Any]:
    core = hit.get("core") if isinstance(hit.get("core"), Mapping) else {}
    lifecycle = hit.get("lifecycle") if isinstance(hit.get("lifecycle"), Mapping) else {}
    state = to_str(lifecycle.get("state")) or listed_state
    kind = to_str(core.get("type"))
    tags = hit.get("tags") if isinstance(hit.get("tags"), Mapping) else {}
    topics = hit.get("topics") if isinstance(hit.get("topics"), Mapping) else {}
    image = core.get("image") if isinstance(core.get("image"), Mapping) else {}
    custom = {"go1_type": kind, "lifecycle_state": state, "content_id": to_str(hit.get("id")),
              "external_id": to_str(core.get("external_id")), "provider_id": to_str(core.get("provider_id"))}
    updated = iso_to_iso(hit.get("updated_time"))
    record = {
        # lo_id: the id /enrollments rows name (`lo_id`); the newer `con_…` id is kept in custom_fields.
        "id": str(hit["lo_id"]),
        "title": to_str(core.get("title")),
        "description": to_str(core.get("description")),
        "code": None,
        "type": lookup(COURSE_TYPE, (kind or "").lower(), default="other"),
        "status": lookup(COURSE_STATUS, (state or "").lower()),
        "language": None,  # not in core; per-language versions are `revisions`
        "duration_seconds": None,
        "urls": [{"url": image["value"], "type": "image"}] if isinstance(image.get("value"), str) and image["value"] else [],
        "categories": _names(topics.get("items")),
        "tags": _names(tags.get("items")),
        "created_at": iso_to_iso(hit.get("created_time")),
        "updated_at": updated,
        "custom_fields": {key: value for key, value in custom.items() if value is not None},
        "remote_data": dict(hit) if keep_raw else None,
    }
    if state == "removed":
        # A removed learning object says when in `lifecycle.pending_state.removed_time`; that time also moves
        # `updated_at`, so that a removal is emitted even if Go1 does not move `updated_time` (unconfirmed).
        pending = lifecycle.get("pending_state") if isinstance(lifecycle.get("pending_state"), Mapping) else {}
        removed_at = iso_to_iso(pending.get("removed_time"))
        if removed_at is not None:
            record["remote_deleted_at"] = removed_at
            record["updated_at"] = latest(updated, removed_at)
    return record


ENROLLMENT_STATUS = {"in-progress": "in_progress", "completed": "completed", "assigned": "assigned"}
_OPEN = frozenset({"assigned", "enrolled", "in_progress"})


def enrollment_status(hit: Mapping[str, Any], now: str) -> str:
    raw = str(hit.get("status") or "").strip().lower()
    if raw == "not-started":
        status = "assigned" if hit.get("enrollment_type") == "assigned" else "enrolled"
    else:
        status = lookup(ENROLLMENT_STATUS, raw)
    if status == "completed" and to_bool(hit.get("pass")) is True:
        return "passed"
    due = iso_to_iso(hit.get("due_date"))
    if status in _OPEN and due is not None and due < now:
        return "overdue"
    return status


def to_course_enrollment(hit: Mapping[str, Any], now: str, keep_raw: bool = False) -> dict[str, Any]:
    raw_status = str(hit.get("status") or "").strip().lower()
    progress = 100 if raw_status == "completed" else 0 if raw_status in ("not-started", "assigned") else None
    assigner = to_str(hit.get("assigner_account_id"))
    created = iso_to_iso(hit.get("created_time"))
    score = to_number(hit.get("result"))
    return {
        "id": str(hit["id"]),
        "user": {"id": str(hit["user_account_id"]), "name": None, "emails": []},
        "course": {"id": str(hit["lo_id"]), "title": None},
        "status": enrollment_status(hit, now),
        "assigned_at": iso_to_iso(hit.get("assign_date")),
        "due_at": iso_to_iso(hit.get("due_date")),
        "enrolled_at": created,
        "started_at": iso_to_iso(hit.get("start_date")),
        "last_activity_at": None,
        "completed_at": iso_to_iso(hit.get("end_date")),  # populated for completed enrollments only
        "progress_percent": to_percent(progress),  # the list has no progress: only what the status implies
        "time_spent_seconds": None,
        "score": score,
        "is_mandatory": None,
        "assigned_by": {"id": assigner, "name": None} if assigner else None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": [],
        "created_at": created,
        "updated_at": iso_to_iso(hit.get("updated_time")),
        "custom_fields": {key: value for key, value in (("enrollment_type", to_str(hit.get("enrollment_type"))), ("pass", to_bool(hit.get("pass")))) if value is not None},
        "remote_data": dict(hit) if keep_raw else None,
    }

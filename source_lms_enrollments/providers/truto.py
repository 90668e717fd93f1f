"""Truto unified LMS API (https://api.truto.one/unified/lms): users, courses and course enrollments of any LMS
Truto connects, already in a unified model close to this connector's.

Facts: ../shared/docs/providers-unified-northpass.md §2 and §4; docs/providers/truto.md.
- Auth: `Authorization: Bearer <api token>`; every request carries `integrated_account_id` (the customer's account).
- Paging: `limit` and an opaque `next_cursor` in the body, sent back as `next_cursor`; null means the last page.
- Pass-through: Truto calls the LMS in real time and stores nothing. Behind TalentLMS, course enrollments must be
  filtered: they are read per course with `course[id]`.
- No modified-since filter is documented for the LMS resources: every stream is read in full and filtered here.
- Errors: `{"statusCode", "error", "message"}`, plus `truto_is_remote_error` and `raw_response` when the LMS failed.
- Rate limits are the LMS's, normalised into `ratelimit-*` headers (`ratelimit-reset`: seconds until the reset).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources.streams.http.requests_native_auth import TokenAuthenticator

from ..base import BodyCursorStream, LmsProvider, LmsStream
from ..http_policy import RateLimitResetBackoff
from ..unified import (
    COURSE_STATUSES,
    COURSE_TYPES,
    ENROLLMENT_STATUSES,
    USER_ROLES,
    USER_STATUSES,
    iso_to_iso,
    raw_copy,
    to_bool,
    to_number,
    to_percent,
    to_str,
)


class Truto(LmsProvider):
    provider_type = "truto"
    title = "Truto"
    default_base_url = "https://api.truto.one"
    base_url_example = "https://api.truto.one"
    spec_required = ["api_token", "integrated_account_id"]
    spec_properties = {
        "api_token": {
            "type": "string",
            "title": "API token",
            "description": "A Truto API token (Truto app → Settings → API tokens). Sent as a Bearer token.",
            "airbyte_secret": True,
            "order": 2,
        },
        "integrated_account_id": {
            "type": "string",
            "title": "Integrated account ID",
            "description": "The UUID of the customer's connected LMS account in Truto (Truto app → Integrated accounts).",
            "examples": ["62f44730-dd91-461e-bd6a-aedd9e0ad79d"],
            "order": 3,
        },
    }
    credential_hint = "Check provider.api_token, and that provider.integrated_account_id is an account this token's environment can read."

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/unified/lms/"
        self.integrated_account_id = str(self.config.provider["integrated_account_id"]).strip()

    def make_authenticator(self) -> TokenAuthenticator:
        return TokenAuthenticator(token=str(self.config.provider["api_token"]))

    def streams(self) -> list[LmsStream]:
        return [TrutoUsers(self), TrutoCourses(self), TrutoCourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        return TrutoUsers(self, max_retries=1, page_size=1)


class TrutoStream(BodyCursorStream):
    """`{"result": [...], "next_cursor": "…" | null}`, scoped by `integrated_account_id`."""

    records_key = "result"
    cursor_key = "next_cursor"
    cursor_param = "next_cursor"
    page_size_param = "limit"
    # Truto documents no default or maximum `limit` (providers doc §2.4); 100 keeps each pass-through call modest.
    page_size = 100

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        params: dict[str, Any] = {"integrated_account_id": self.provider.integrated_account_id}
        if not self.config.include_remote_data:
            params["truto_ignore_remote_data"] = "true"  # the LMS's raw payload can be most of the answer
        return params

    def provider_backoffs(self) -> list[Any]:
        return [RateLimitResetBackoff(self.provider.title, "ratelimit-reset", epoch=False)]

    def describe_error(self, response: requests.Response) -> str | None:
        return truto_error_message(response)


class TrutoUsers(TrutoStream):
    """GET /unified/lms/users (for TalentLMS a partial list: fields it leaves out arrive null)."""

    unified_name = "users"

    def path(self, **_: Any) -> str:
        return "users"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_user(raw, keep_raw))


class TrutoCourses(TrutoStream):
    """GET /unified/lms/courses."""

    unified_name = "courses"

    def path(self, **_: Any) -> str:
        return "courses"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_course(raw, keep_raw))


class TrutoCourseList(TrutoStream):
    """GET /unified/lms/courses, only id and title: the parent list of the enrollment fan-out."""

    unified_name = "course_list"

    def path(self, **_: Any) -> str:
        return "courses"

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        return {"integrated_account_id": self.provider.integrated_account_id, "truto_ignore_remote_data": "true"}

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        for course in self.records_of(response):
            yield {"id": str(course["id"]), "title": to_str(course.get("title"))}


class TrutoCourseEnrollments(TrutoStream):
    """GET /unified/lms/course-enrollments?course[id]={id} for each course of GET /unified/lms/courses.

    TalentLMS behind Truto refuses an unfiltered list (providers doc §2.3), and a course is the natural unit there.
    Rows whose course is not the slice's are dropped: an integration that ignored the filter would otherwise
    repeat every enrollment once per course.
    """

    unified_name = "course_enrollments"
    ignore_not_found = True  # a course deleted after the course list was read

    def partitions(self) -> Iterable[dict[str, Any]]:
        for course in TrutoCourseList(self.provider).records_of_slice(SyncMode.full_refresh, {}):
            yield {"course_id": course["id"], "course_title": course["title"]}

    def path(self, **_: Any) -> str:
        return "course-enrollments"

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**super().list_params(stream_slice), "course[id]": (stream_slice or {}).get("course_id")}

    def parse_response(self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> Iterable[Mapping[str, Any]]:
        course = {"id": stream_slice["course_id"], "title": stream_slice.get("course_title")} if stream_slice else None
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_course_enrollment(raw, course, keep_raw))


def truto_error_message(response: requests.Response) -> str | None:
    """Truto's `message`, saying whether it came from the LMS behind Truto (`truto_is_remote_error`)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not body.get("message"):
        return None
    message = str(body["message"])
    return f"the LMS behind Truto said: {message}" if body.get("truto_is_remote_error") else message


# ---- mappers: Truto's unified records in, this connector's records out ----------------------------------------------
# Truto's model is already this one (seed 001 is its CourseEnrollments object): copy, normalise timestamps, numbers
# and enumerations, and leave out fields this schema does not have (they stay in remote_data when that is on).


def _enum(value: Any, allowed: frozenset[str], default: str | None) -> str | None:
    if value is None or value == "":
        return default
    text = str(value).strip().lower()
    return text if text in allowed else "unknown" if "unknown" in allowed else "other"


def _emails(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [
        {"email": to_str(item.get("email")), "type": to_str(item.get("type")), "is_primary": to_bool(item.get("is_primary"))}
        for item in value
        if isinstance(item, dict) and item.get("email")
    ]


def _urls(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [{"url": to_str(item.get("url")), "type": to_str(item.get("type"))} for item in value if isinstance(item, dict) and item.get("url")]


def _named(value: Any) -> list[dict[str, Any]]:
    """categories / tags: objects with id and name, or bare names/ids."""
    if not isinstance(value, list):
        return []
    named = []
    for item in value:
        if isinstance(item, dict):
            named.append({"id": to_str(item.get("id")), "name": to_str(item.get("name"))})
        elif item not in (None, ""):
            named.append({"id": None, "name": str(item)})
    return named


def _ref(value: Any, *fields: str) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("id") in (None, ""):
        return None
    return {"id": str(value["id"]), **{field: to_str(value.get(field)) for field in fields}}


def _int(value: Any) -> int | None:
    number = to_number(value)
    return int(number) if number is not None else None


def _custom(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def to_user(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    return {
        "id": str(raw["id"]),
        "name": to_str(raw.get("name")),
        "first_name": to_str(raw.get("first_name")),
        "last_name": to_str(raw.get("last_name")),
        "username": to_str(raw.get("username")),
        "emails": _emails(raw.get("emails")),
        "status": _enum(raw.get("status"), USER_STATUSES, "unknown"),
        "role": _enum(raw.get("role"), USER_ROLES, None),
        "locale": to_str(raw.get("locale")),
        "timezone": to_str(raw.get("timezone")),
        "job_title": to_str(raw.get("job_title")),
        "last_login_at": iso_to_iso(raw.get("last_login_at")),
        "created_at": iso_to_iso(raw.get("created_at")),
        "updated_at": iso_to_iso(raw.get("updated_at")),
        "custom_fields": _custom(raw.get("custom_fields")),
        "remote_data": raw_copy(raw, keep_raw),
    }


def to_course(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    return {
        "id": str(raw["id"]),
        "title": to_str(raw.get("title")),
        "description": to_str(raw.get("description")),
        "code": to_str(raw.get("code")),
        "type": _enum(raw.get("type"), COURSE_TYPES, None),
        "status": _enum(raw.get("status"), COURSE_STATUSES, "unknown"),
        "language": to_str(raw.get("language")),
        "duration_seconds": _int(raw.get("duration_seconds")),
        "urls": _urls(raw.get("urls")),
        "categories": _named(raw.get("categories")),
        "tags": _named(raw.get("tags")),
        "created_at": iso_to_iso(raw.get("created_at")),
        "updated_at": iso_to_iso(raw.get("updated_at")),
        "custom_fields": _custom(raw.get("custom_fields")),
        "remote_data": raw_copy(raw, keep_raw),
    }


def to_course_enrollment(raw: Mapping[str, Any], course: Mapping[str, Any] | None = None, keep_raw: bool = False) -> dict[str, Any] | None:
    """A CourseEnrollments record; `course` is the slice's course ({id, title}), or None outside a fan-out.

    None when the record belongs to another course than the slice's (the filter was not applied).
    """
    own_course = _ref(raw.get("course"), "title")
    if course is not None:
        if own_course is not None and own_course["id"] != course["id"]:
            return None
        own_course = {"id": course["id"], "title": (own_course or {}).get("title") or course.get("title")}
    user = raw.get("user") if isinstance(raw.get("user"), dict) else {}
    return {
        "id": str(raw["id"]),
        "user": {"id": to_str(user.get("id")), "name": to_str(user.get("name")), "emails": _emails(user.get("emails"))} if user else None,
        "course": own_course,
        "status": _enum(raw.get("status"), ENROLLMENT_STATUSES, "unknown"),
        "assigned_at": iso_to_iso(raw.get("assigned_at")),
        "due_at": iso_to_iso(raw.get("due_at")),
        "enrolled_at": iso_to_iso(raw.get("enrolled_at")),
        "started_at": iso_to_iso(raw.get("started_at")),
        "last_activity_at": iso_to_iso(raw.get("last_activity_at")),
        "completed_at": iso_to_iso(raw.get("completed_at")),
        "progress_percent": to_percent(raw.get("progress_percent")),
        "time_spent_seconds": _int(raw.get("time_spent_seconds")),
        "score": to_number(raw.get("score")),
        "is_mandatory": to_bool(raw.get("is_mandatory")),
        "assigned_by": _ref(raw.get("assigned_by"), "name"),
        "attempt_number": _int(raw.get("attempt_number")),
        "attempts_count": _int(raw.get("attempts_count")),
        "urls": _urls(raw.get("urls")),
        "created_at": iso_to_iso(raw.get("created_at")),
        "updated_at": iso_to_iso(raw.get("updated_at")),
        "custom_fields": _custom(raw.get("custom_fields")),
        "remote_data": raw_copy(raw, keep_raw),
    }

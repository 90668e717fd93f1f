"""Bindbee unified LMS API (https://api.bindbee.dev/api/lms/v1): users, courses and enrollments (with their
completions) of the LMS behind one Bindbee connector.

Facts: ../shared/docs/providers-unified-northpass.md §3 and §4; docs/providers/bindbee.md.
- Auth: `Authorization: Bearer <Bindbee API key>` and `X-Connector-Token: <connector token>` on every request.
- Paging: `page_size` (1–100 on the published LMS pages, 200 in the OpenAPI: 100 is safe) and an opaque `cursor`
  in the body, sent back as `cursor`; `cursor: null` means the last page.
- Not pass-through: Bindbee syncs the LMS into its own store and the API reads that copy. `modified_at` is when
  Bindbee last wrote a record; its background sync rewrites records while we page, so the cursor keeps a lag.
- The LMS list endpoints document no `modified_after` (HRIS ones do): every stream is read in full and filtered here.
- Ids: Bindbee's `id` everywhere (relations point at it); the LMS's own `remote_id` stays in remote_data.
- Errors: `{"detail": "..."}`; validation errors (422) `{"detail": [{"loc", "msg", "type"}]}`.
- Rate limit: 200 requests a minute per connector token; a 429 carries `Retry-After` and `X-RateLimit-Reset`.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import requests

from ..base import BodyCursorStream, HeaderAuth, LmsProvider, LmsStream
from ..http_policy import RateLimitResetBackoff
from ..unified import iso_duration_to_seconds, iso_to_iso, latest, lookup, primary_emails, raw_copy, to_number, to_str


class Bindbee(LmsProvider):
    provider_type = "bindbee"
    title = "Bindbee"
    default_base_url = "https://api.bindbee.dev"
    base_url_example = "https://api.bindbee.dev"
    spec_required = ["api_token", "connector_token"]
    spec_properties = {
        "api_token": {
            "type": "string",
            "title": "API key",
            "description": "Your Bindbee API key (Settings → API Key), of the environment the connector lives in. Sent as a Bearer token.",
            "airbyte_secret": True,
            "order": 2,
        },
        "connector_token": {
            "type": "string",
            "title": "Connector token",
            "description": "The connector token of the customer's LMS connection (the connector's Overview / Connector Details). Sent as X-Connector-Token.",
            "airbyte_secret": True,
            "order": 3,
        },
    }
    credential_hint = (
        "Check provider.api_token (a Bindbee API key of the connector's environment) and provider.connector_token "
        "(the token of an LMS connector: a token of an HRIS or ATS connector is refused)."
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/api/lms/v1/"

    def make_authenticator(self) -> HeaderAuth:
        # The organisation's API key as a Bearer token, the customer's connector token in its own header.
        api_token, connector_token = str(self.config.provider["api_token"]), str(self.config.provider["connector_token"])
        return HeaderAuth({"Authorization": f"Bearer {api_token}", "X-Connector-Token": connector_token}, secrets=[api_token, connector_token])

    def streams(self) -> list[LmsStream]:
        return [BindbeeUsers(self), BindbeeCourses(self), BindbeeEnrollments(self)]

    def check_stream(self) -> LmsStream:
        return BindbeeUsers(self, max_retries=1, page_size=1)


class BindbeeStream(BodyCursorStream):
    """`{"cursor": "…" | null, "page_size": n, "items": [...]}`."""

    records_key = "items"
    cursor_key = "cursor"
    cursor_param = "cursor"
    page_size_param = "page_size"
    # The published LMS pages say at most 100, the OpenAPI 200 (providers doc §3.4): 100 is accepted by both.
    page_size = 100
    # Bindbee rewrites records (new modified_at) during its background syncs, which can run while we page; its
    # docs advise keeping the watermark a minute behind. Five minutes also absorbs clock skew between us and it.
    cursor_lag_seconds = 300

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            # raw_data is the LMS's own payload: only when the user asked for remote_data (it is large).
            "include_raw_data": "true" if self.config.include_remote_data else "false",
            # custom_fields is part of the unified schema, so always asked for.
            "include_custom_fields": "true",
        }

    def provider_backoffs(self) -> list[Any]:
        # Retry-After is authoritative and comes first; the reset instant covers a 429 that lacks it.
        return [RateLimitResetBackoff(self.provider.title, "X-RateLimit-Reset", epoch=True)]

    def describe_error(self, response: requests.Response) -> str | None:
        return bindbee_error_message(response)


class BindbeeUsers(BindbeeStream):
    """GET /api/lms/v1/users."""

    unified_name = "users"

    def path(self, **_: Any) -> str:
        return "users"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_user(raw, keep_raw))


class BindbeeCourses(BindbeeStream):
    """GET /api/lms/v1/courses."""

    unified_name = "courses"

    def path(self, **_: Any) -> str:
        return "courses"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_course(raw, keep_raw))


# Inline what an enrollment record needs instead of joining users, courses and completions lists (three more
# full reads): the user's name and e-mail, the course's name, and the whole completion (status, dates, score).
ENROLLMENT_EXPAND = "user[id,first_name,middle_name,last_name,email_address],course[id,name],completion"


class BindbeeEnrollments(BindbeeStream):
    """GET /api/lms/v1/enrollments?expand=user[…],course[…],completion: each enrollment with its completion."""

    unified_name = "course_enrollments"
    # Expanded pages are several times larger (Bindbee's pagination guide): keep them smaller.
    page_size = 50

    def path(self, **_: Any) -> str:
        return "enrollments"

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**super().list_params(stream_slice), "expand": ENROLLMENT_EXPAND}

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_course_enrollment(raw, keep_raw))


def bindbee_error_message(response: requests.Response) -> str | None:
    """`detail` as a string, or FastAPI's validation list as "where: what; …"."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(part) for part in item.get("loc") or [])
                parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        return "; ".join(parts) or None
    return None


# ---- mappers: Bindbee records in, unified records out ------------------------------------------------------------

USER_STATUS = {"active": "active", "inactive": "inactive", "pending": "invited",
               # values outside Bindbee's enum are the LMS's own, passed through; these two say the same as ours
               "suspended": "suspended", "deleted": "deleted"}
COURSE_STATUS = {"active": "published", "pending": "draft", "inactive": "disabled"}


def _ref_id(value: Any) -> str | None:
    """A relation: a Bindbee id, or the expanded object holding one."""
    if isinstance(value, dict):
        return to_str(value.get("id"))
    return to_str(value)


def _joined_name(*parts: Any) -> str | None:
    name = " ".join(str(part).strip() for part in parts if part not in (None, "") and str(part).strip())
    return name or None


def _custom(raw: Mapping[str, Any]) -> dict[str, Any]:
    value = raw.get("custom_fields")
    return dict(value) if isinstance(value, dict) else {}


def to_user(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    first, last = to_str(raw.get("first_name")), to_str(raw.get("last_name"))
    return {
        "id": str(raw["id"]),
        "name": _joined_name(first, raw.get("middle_name"), last),
        "first_name": first,
        "last_name": last,
        "username": None,
        "emails": primary_emails(to_str(raw.get("email_address")), kind=None),  # Bindbee gives no e-mail type
        "status": lookup(USER_STATUS, raw.get("status")),
        "role": None,  # the User model has no role
        "locale": None,
        "timezone": None,
        "job_title": None,
        "last_login_at": None,
        "created_at": None,
        "updated_at": iso_to_iso(raw.get("modified_at")),
        "custom_fields": _custom(raw),
        "remote_data": raw_copy(raw, keep_raw),
    }


def _categories(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [{"id": _ref_id(item), "name": to_str(item.get("name")) if isinstance(item, dict) else None}
            for item in value if _ref_id(item)]


def to_course(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    urls = []
    if raw.get("url"):
        urls.append({"url": str(raw["url"]), "type": "launch"})
    if raw.get("cover_image"):
        urls.append({"url": str(raw["cover_image"]), "type": "image"})
    languages = raw.get("languages")
    return {
        "id": str(raw["id"]),
        "title": to_str(raw.get("name")),
        "description": to_str(raw.get("description")),
        "code": None,
        "type": "course",  # the Course model has no type; contents are a course's parts, not assignable items
        "status": lookup(COURSE_STATUS, raw.get("status")),
        "language": to_str(languages[0]) if isinstance(languages, list) and languages else None,
        "duration_seconds": iso_duration_to_seconds(raw.get("duration")),
        "urls": urls,
        "categories": _categories(raw.get("categories")),
        "tags": [],
        "created_at": None,
        "updated_at": iso_to_iso(raw.get("modified_at")),
        "custom_fields": _custom(raw),
        "remote_data": raw_copy(raw, keep_raw),
    }


def enrollment_status(completion: Any, start_date: Any) -> str:
    """providers doc §4.4, first match wins. A completion not expanded (a bare id) still says it is complete."""
    if completion not in (None, ""):
        grade = str(completion.get("grade") or "").strip().upper() if isinstance(completion, dict) else ""
        if grade == "PASS":
            return "passed"
        if grade == "FAIL":
            return "failed"
        return "completed"  # letter grades carry no pass mark: they stay in remote_data
    if start_date not in (None, ""):
        return "in_progress"
    return "enrolled"


def to_course_enrollment(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    """An enrollment read with ENROLLMENT_EXPAND; relations that come back as bare ids are tolerated."""
    user, course, completion = raw.get("user"), raw.get("course"), raw.get("completion")
    user_obj = user if isinstance(user, dict) else {}
    course_obj = course if isinstance(course, dict) else {}
    done = completion if isinstance(completion, dict) else {}
    start_date = iso_to_iso(raw.get("start_date"))
    score = to_number(done.get("score"))
    return {
        "id": str(raw["id"]),
        "user": {
            "id": _ref_id(user),
            "name": _joined_name(user_obj.get("first_name"), user_obj.get("middle_name"), user_obj.get("last_name")),
            "emails": primary_emails(to_str(user_obj.get("email_address")), kind=None),
        },
        "course": {"id": _ref_id(course), "title": to_str(course_obj.get("name"))},
        "status": enrollment_status(completion, start_date),
        "assigned_at": None,
        "due_at": None,
        "enrolled_at": None,
        "started_at": start_date or iso_to_iso(done.get("started_at")),
        "last_activity_at": None,
        "completed_at": iso_to_iso(done.get("completed_at")),
        "progress_percent": None,
        "time_spent_seconds": iso_duration_to_seconds(done.get("time_duration")),
        "score": score,
        "is_mandatory": None,
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": [],
        "created_at": None,
        # A completion appearing or changing is a change of the enrollment: take the later of the two writes.
        "updated_at": latest(iso_to_iso(raw.get("modified_at")), iso_to_iso(done.get("modified_at"))),
        "custom_fields": _custom(raw),
        "remote_data": raw_copy(raw, keep_raw),
    }

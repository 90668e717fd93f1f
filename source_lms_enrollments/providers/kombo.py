"""Kombo unified LMS API (https://docs.kombo.dev/lms): users, courses and course progressions of the LMS behind
one Kombo integration (SAP SuccessFactors, Cornerstone, Workday, Udemy Business, Coursera, 360Learning, Docebo,
Moodle, TalentLMS, …).

Facts (sources on docs/providers/kombo.md; Kombo's OpenAPI, `api-evangelist/kombo:openapi/kombo-openapi.json`):
- Hosts `https://api.kombo.dev/v1` (EU) and `https://api.us.kombo.dev/v1` (US); `base_url` is the host.
- Auth: `Authorization: Bearer <API key>` and `X-Integration-Id: <integration id>` on every request.
- Not pass-through: Kombo syncs the LMS into its own store and serves that copy; `changed_at` is when Kombo saw a
  record change, so the cursor keeps a lag (a record rewritten behind the read comes again next sync).
- Answers: `{"status": "success", "data": {"next": "…" | null, "results": [...]}}`; paged by `page_size`
  (1–250, default 100) and `cursor` (the previous page's `next`).
- `updated_after` (ISO `…sss Z`) on every list; for courses it also matches a changed or added revision, for
  users and progressions only the record itself. Deleted records (`remote_deleted_at` set when Kombo can no longer
  fetch them; anonymised 14 days later) are hidden unless `include_deleted=true`.
- A progression points to a course revision; `course_revision.course.id` (nullable) is the course.
- Errors: `{"status": "error", "error": {"code", "title", "message", "log_url"}}`; Kombo says to branch on
  `code`, not on the HTTP status. `REMOTE.*` codes come from the LMS behind Kombo.
- Rate limits: no numbers or headers documented; 429 with `PLATFORM.RATE_LIMIT_EXCEEDED` or
  `REMOTE.RATE_LIMIT_EXCEEDED`. `Retry-After` is honoured where sent, else exponential backoff.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction

from ..base import BodyCursorStream, HeaderAuth, LmsProvider, LmsStream
from ..unified import full_name, iso_to_iso, latest, lookup, primary_emails, raw_copy, to_str


class Kombo(LmsProvider):
    provider_type = "kombo"
    title = "Kombo"
    default_base_url = "https://api.kombo.dev"
    base_url_example = "https://api.kombo.dev (EU) or https://api.us.kombo.dev (US)"
    spec_required = ["api_key", "integration_id"]
    spec_properties = {
        "api_key": {
            "type": "string",
            "title": "API key",
            "description": "A Kombo API key (Kombo dashboard → Secrets), of the environment the integration lives in. Sent as a Bearer token.",
            "airbyte_secret": True,
            "order": 2,
        },
        "integration_id": {
            "type": "string",
            "title": "Integration ID",
            "description": "The ID of the customer's LMS integration in Kombo (Kombo dashboard → Integrations). Sent as X-Integration-Id.",
            "examples": ["successfactors:HWUTwvyx2wLoSUHphiWVrp28"],
            "order": 3,
        },
    }
    credential_hint = (
        "Check provider.api_key (a Kombo API key of the integration's environment) and provider.integration_id "
        "(an LMS integration of that environment)."
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/v1/lms/"
        self.integration_id = str(self.config.provider["integration_id"]).strip()
        # Kombo's integration ids read "<tool>:<id>" (`bombohr:HWUT…` in its OpenAPI examples; the tool is the
        # connector's slug, e.g. `successfactors`): the LMS behind Kombo, named in every record's custom_fields.
        tool, sep, _ = self.integration_id.partition(":")
        self.tool = tool if sep and tool else None
        self._revision_courses: dict[str, str] | None = None

    def make_authenticator(self) -> HeaderAuth:
        # The API key as a Bearer token, the integration in its own header.
        api_key = str(self.config.provider["api_key"])
        return HeaderAuth({"Authorization": f"Bearer {api_key}", "X-Integration-Id": str(self.config.provider["integration_id"]).strip()}, secrets=[api_key])

    def streams(self) -> list[LmsStream]:
        return [KomboUsers(self), KomboCourses(self), KomboCourseProgressions(self)]

    def check_stream(self) -> LmsStream:
        return KomboUsers(self, max_retries=1, page_size=1)

    def course_of_revision(self, revision_id: str) -> str | None:
        """The course of a revision, for a progression whose `course_revision.course` is null: one listing of
        /lms/courses (deleted ones included), read the first time it is needed."""
        if self._revision_courses is None:
            self._revision_courses = {
                revision: course
                for course, revisions in KomboRevisionIndex(self).records_of_slice(SyncMode.full_refresh, {})
                for revision in revisions
            }
        return self._revision_courses.get(revision_id)


# Kombo's error codes (OpenAPI `error.code`) whose fix is in the config or in the Kombo dashboard, not a retry.
CONFIG_ERROR_CODES = {
    "PLATFORM.AUTHENTICATION_INVALID": "Check provider.api_key.",
    "PLATFORM.INTEGRATION_NOT_FOUND": "Check provider.integration_id: no such integration in this API key's environment.",
    "PLATFORM.IP_NOT_WHITELISTED": "Kombo refuses this machine's IP address: allow it in the Kombo dashboard.",
    "INTEGRATION.AUTHENTICATION_INVALID": "Kombo's credentials for the LMS were rejected: relink the integration in Kombo.",
    "INTEGRATION.PERMISSION_MISSING": "The LMS account Kombo uses lacks a permission: see the integration in Kombo.",
    "INTEGRATION.INACTIVE": "The integration is inactive in Kombo: reactivate it.",
    "INTEGRATION.SETUP_INCOMPLETE": "The integration's setup is not finished in Kombo.",
    "INTEGRATION.MODEL_NOT_AVAILABLE": "Kombo does not offer this LMS data model for this integration's LMS.",
    "INTEGRATION.MODEL_DISABLED": "This data model is disabled in the integration's scope config in Kombo: enable it.",
}
RETRY_CODES = {"PLATFORM.RATE_LIMIT_EXCEEDED", "PLATFORM.CONCURRENCY_LIMIT_EXCEEDED", "REMOTE.RATE_LIMIT_EXCEEDED"}


def kombo_error(response: requests.Response) -> tuple[str | None, str | None]:
    """(code, message) of Kombo's error envelope, or (None, None)."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    message = to_str(error.get("message")) or to_str(error.get("title"))
    return to_str(error.get("code")), message


def kombo_error_message(response: requests.Response) -> str | None:
    """Kombo's message with its code, saying when it came from the LMS behind Kombo (`REMOTE.*`). The `log_url`
    (a link into the customer's Kombo dashboard) is left out."""
    code, message = kombo_error(response)
    if code is None and message is None:
        return None
    said = f"{message} ({code})" if code else str(message)
    return f"the LMS behind Kombo said: {said}" if code and code.startswith("REMOTE.") else said


class KomboStream(BodyCursorStream):
    """`{"status": "success", "data": {"next": "…" | null, "results": [...]}}`."""

    envelope_key = "data"
    records_key = "results"
    cursor_key = "next"
    cursor_param = "cursor"
    page_size_param = "page_size"
    page_size = 250  # the documented maximum (default 100)
    # Kombo writes changed_at when its own sync of the LMS sees a change, which can happen while we page.
    cursor_lag_seconds = 300
    server_side_filter = True

    def __init__(self, provider: Kombo, **kwargs: Any) -> None:
        super().__init__(provider, **kwargs)
        self._updated_after: str | None = None
        self._incremental = False

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        # request_params gets no sync mode from the CDK: the bound is taken here, once per read (one slice).
        since = self.since_on_server(sync_mode)  # None in a deletion sweep: everything is listed then
        self._updated_after = f"{since[:19]}.000Z" if since else None  # the documented YYYY-MM-DDTHH:mm:ss.sssZ
        self._incremental = sync_mode == SyncMode.incremental
        yield from super().records_of_slice(sync_mode, stream_slice)

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self._updated_after:
            params["updated_after"] = self._updated_after
        if self._incremental:
            params["include_deleted"] = "true"  # Kombo's deletion signal: deleted records with remote_deleted_at
        return params

    def provider_error_rule(self, response: requests.Response) -> ErrorResolution | None:
        # Kombo: "use the error code instead of other properties (e.g. message, http status code)".
        code, _ = kombo_error(response)
        if code in CONFIG_ERROR_CODES:
            return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, CONFIG_ERROR_CODES[code])
        if code in RETRY_CODES:
            return ErrorResolution(ResponseAction.RATE_LIMITED, FailureType.transient_error, None)
        if code == "REMOTE.SERVICE_UNAVAILABLE":
            return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, None)
        return None

    def describe_error(self, response: requests.Response) -> str | None:
        return kombo_error_message(response)

    def emitted(self, record: dict[str, Any]) -> dict[str, Any]:
        """A mapped record, or the tombstone of a record Kombo lists as deleted (design.md §5a)."""
        deleted_at = record["remote_deleted_at"]
        if deleted_at is None:
            return record
        tombstone = self.tombstone(record["id"], deleted_at)
        for ref in ("user", "course"):  # an enrollment's tombstone still names its learner and course
            if ref in tombstone and record.get(ref):
                tombstone[ref] = {**{key: None for key in record[ref]}, "id": record[ref]["id"]}
        return tombstone


class KomboUsers(KomboStream):
    """GET /v1/lms/users."""

    unified_name = "users"

    def path(self, **_: Any) -> str:
        return "users"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw, tool = self.config.include_remote_data, self.provider.tool
        yield from self.mapped(response, lambda raw: self.emitted(to_user(raw, tool, keep_raw)))


class KomboCourses(KomboStream):
    """GET /v1/lms/courses: each course with its revisions (title, description, status live on a revision)."""

    unified_name = "courses"

    def path(self, **_: Any) -> str:
        return "courses"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw, tool = self.config.include_remote_data, self.provider.tool
        yield from self.mapped(response, lambda raw: self.emitted(to_course(raw, tool, keep_raw)))


class KomboRevisionIndex(KomboStream):
    """GET /v1/lms/courses?include_deleted=true, only ids: (course id, its revision ids) for the progressions' join."""

    unified_name = "course_revisions"

    def path(self, **_: Any) -> str:
        return "courses"

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        return {"include_deleted": "true"}

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Any]:
        for course in self.records_of(response):
            revisions = course.get("revisions") if isinstance(course.get("revisions"), list) else []
            yield str(course["id"]), [str(r["id"]) for r in revisions if isinstance(r, dict) and r.get("id")]


class KomboCourseProgressions(KomboStream):
    """GET /v1/lms/course-progressions: learners' progress per course revision, as enrollments of its course."""

    unified_name = "course_enrollments"

    def path(self, **_: Any) -> str:
        return "course-progressions"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw, tool = self.config.include_remote_data, self.provider.tool
        course_of = self.provider.course_of_revision
        yield from self.mapped(response, lambda raw: self.emitted(to_course_enrollment(raw, course_of, tool, keep_raw)))


# ---- mappers: Kombo records in, unified records out ----------------------------------------------------------------

USER_STATUS = {"active": "active", "inactive": "inactive"}
REVISION_STATUS = {"active": "published", "inactive": "disabled"}
PROGRESSION_STATUS = {"enrolled": "enrolled", "in_progress": "in_progress", "completed": "completed", "dropped": "withdrawn"}


def _custom(value: Any, tool: str | None) -> dict[str, Any]:
    """Kombo's custom_fields (the LMS's own), plus `kombo_tool`: which LMS Kombo read them from."""
    fields = dict(value) if isinstance(value, dict) else {}
    if tool:
        fields["kombo_tool"] = tool
    return fields


def to_user(raw: Mapping[str, Any], tool: str | None = None, keep_raw: bool = False) -> dict[str, Any]:
    first, last = to_str(raw.get("first_name")), to_str(raw.get("last_name"))
    return {
        "id": str(raw["id"]),
        "name": full_name(first, last),
        "first_name": first,
        "last_name": last,
        "username": None,
        "emails": primary_emails(to_str(raw.get("work_email"))),
        "status": lookup(USER_STATUS, raw.get("status")),
        "role": None,  # the LMS user model has no role
        "locale": None,
        "timezone": None,
        "job_title": None,
        "last_login_at": None,
        "created_at": iso_to_iso(raw.get("remote_created_at")),
        "updated_at": iso_to_iso(raw.get("changed_at")),
        "custom_fields": _custom(raw.get("custom_fields"), tool),
        "remote_data": raw_copy(raw, keep_raw),
        "remote_deleted_at": iso_to_iso(raw.get("remote_deleted_at")),
    }


def current_revision(revisions: Any) -> Mapping[str, Any] | None:
    """The revision a course is shown by: live before deleted, ACTIVE before INACTIVE, then the newest."""
    if not isinstance(revisions, list):
        return None
    candidates = [r for r in revisions if isinstance(r, dict)]
    if not candidates:
        return None

    def rank(revision: Mapping[str, Any]) -> tuple[bool, bool, str]:
        created = iso_to_iso(revision.get("remote_created_at")) or iso_to_iso(revision.get("changed_at")) or ""
        return revision.get("remote_deleted_at") is None, revision.get("status") == "ACTIVE", created

    return max(candidates, key=rank)


def to_course(raw: Mapping[str, Any], tool: str | None = None, keep_raw: bool = False) -> dict[str, Any]:
    revisions = raw.get("revisions") if isinstance(raw.get("revisions"), list) else []
    revision = current_revision(revisions) or {}
    url = to_str(revision.get("remote_url"))
    return {
        "id": str(raw["id"]),
        "title": to_str(revision.get("title")),
        "description": to_str(revision.get("description")),
        "code": None,
        "type": "course",  # Kombo's LMS model has courses only
        "status": lookup(REVISION_STATUS, revision.get("status")),
        "language": None,
        "duration_seconds": None,
        "urls": [{"url": url, "type": "launch"}] if url else [],
        "categories": [],
        "tags": [],
        "created_at": iso_to_iso(raw.get("remote_created_at")),
        # updated_after matches a course whose revision changed or was added while its own changed_at stays:
        # the latest of them all, so that the client-side filter keeps what the server sent.
        "updated_at": latest(iso_to_iso(raw.get("changed_at")), *(iso_to_iso(r.get("changed_at")) for r in revisions if isinstance(r, dict))),
        "custom_fields": _custom({**_dict(revision.get("custom_fields")), **_dict(raw.get("custom_fields"))}, tool),
        "remote_data": raw_copy(raw, keep_raw),
        "remote_deleted_at": iso_to_iso(raw.get("remote_deleted_at")),
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def to_course_enrollment(raw: Mapping[str, Any], course_of_revision: Any = None, tool: str | None = None, keep_raw: bool = False) -> dict[str, Any]:
    """A course progression as the enrollment of the revision's course; `course_of_revision(revision_id)` resolves
    a revision whose `course` Kombo left null."""
    user = _dict(raw.get("user"))
    revision = _dict(raw.get("course_revision"))
    revision_id = to_str(raw.get("course_revision_id")) or to_str(revision.get("id"))
    course_id = to_str(_dict(revision.get("course")).get("id"))
    if course_id is None and revision_id and course_of_revision is not None:
        course_id = course_of_revision(revision_id)
    first, last = to_str(user.get("first_name")), to_str(user.get("last_name"))
    return {
        "id": str(raw["id"]),
        "user": {"id": to_str(raw.get("user_id")) or to_str(user.get("id")), "name": full_name(first, last),
                 "emails": primary_emails(to_str(user.get("work_email")))},
        "course": {"id": course_id, "title": to_str(revision.get("title"))},
        "status": lookup(PROGRESSION_STATUS, raw.get("status")),
        "assigned_at": None,
        "due_at": None,
        "enrolled_at": iso_to_iso(raw.get("enrolled_at")),
        "started_at": None,
        "last_activity_at": None,
        "completed_at": iso_to_iso(raw.get("completed_at")),
        "progress_percent": None,
        "time_spent_seconds": None,
        "score": None,
        "is_mandatory": None,
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": [],
        "created_at": None,
        "updated_at": iso_to_iso(raw.get("changed_at")),
        "custom_fields": _custom(None, tool),
        "remote_data": raw_copy(raw, keep_raw),
        "remote_deleted_at": iso_to_iso(raw.get("remote_deleted_at")),
    }

"""Unified.to LMS API (https://docs.unified.to/lms/overview): students, instructors, courses and learner activities of
any LMS a Unified.to connection reaches (Docebo, LearnUpon, Coursera, D2L Brightspace, SuccessFactors, Udemy, …).

Facts, with sources: docs/providers/unified_to.md.
- Auth: `Authorization: Bearer <workspace API token>` (docs.unified.to/reference/rest); the customer's connection
  is a path segment: `GET /lms/{connection_id}/student`, `/instructor`, `/course`, `/activity`.
- Paging: `limit` (default 100) and `offset`; the answer is a bare JSON array, so a short page is the last.
- `updated_gte` (ISO 8601) returns records updated at or after it, where the integration behind supports it (each
  integration's "List options" say); one that ignores it returns everything, and the base filters here anyway.
- Pass-through: Unified.to reads the LMS live on every call and stores nothing; rate limits are the LMS's and the
  workspace's (429), and errors of the LMS are passed on with their own status and message.
- No deletion signal in the LMS models: deletions are found by comparing complete listings (design.md §5a).
- Enrollments: the model has no enrollment object; `activity` rows (one per learner and course for course-level
  integrations, one per learner and content item for others) are aggregated per learner and course.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import quote, urlsplit

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from airbyte_cdk.sources.streams.http.requests_native_auth import TokenAuthenticator

from ..base import LmsProvider, LmsStream, OffsetPageStream, parsed_once
from ..unified import full_name, iso_to_iso, raw_copy, to_bool, to_number, to_percent, to_str

logger = logging.getLogger("airbyte")

# An incremental read re-reads the activities of each course with a changed activity, so that a learner's
# enrollment is rebuilt from all its activities; past this many courses one full listing is cheaper.
MAX_COURSE_REREADS = 20


class UnifiedTo(LmsProvider):
    provider_type = "unified_to"
    title = "Unified.to"
    default_base_url = "https://api.unified.to"
    base_url_example = "https://api.unified.to (EU: https://api-eu.unified.to, AU: https://api-au.unified.to)"
    spec_required = ["api_token", "connection_id"]
    spec_properties = {
        "api_token": {
            "type": "string",
            "title": "API token",
            "description": "A Unified.to workspace API token (app.unified.to → Settings → API keys). Sent as a Bearer token.",
            "airbyte_secret": True,
            "order": 2,
        },
        "connection_id": {
            "type": "string",
            "title": "Connection ID",
            "description": "The ID of the customer's LMS connection in Unified.to (app.unified.to → Connections).",
            "examples": ["65e8a2c1f0b3a47d9c2e1b05"],
            "order": 3,
        },
    }
    credential_hint = (
        "Check provider.api_token (a workspace API token of the Unified.to region in provider.base_url) and "
        "provider.connection_id (an LMS connection of that workspace)."
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.connection_id = str(self.config.provider["connection_id"]).strip()
        self.api_base = f"{self.config.base_url}/lms/{quote(self.connection_id, safe='')}/"
        self._integration: dict[str, str | None] | None = None

    def make_authenticator(self) -> TokenAuthenticator:
        return TokenAuthenticator(token=str(self.config.provider["api_token"]))

    def streams(self) -> list[LmsStream]:
        return [UnifiedToUsers(self), UnifiedToCourses(self), UnifiedToCourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        return UnifiedToUsers(self, max_retries=1, page_size=1)

    def integration(self) -> dict[str, str | None]:
        """The LMS behind the connection (`integration_type`, `integration_name` of GET /unified/connection/{id}),
        read once per sync: the LMS records themselves do not name it."""
        if self._integration is None:
            found = next(iter(UnifiedToConnection(self).records_of_slice(SyncMode.full_refresh, {})), {})
            self._integration = {"type": found.get("integration_type"), "name": found.get("integration_name")}
        return self._integration


class UnifiedToHttp:
    """What every Unified.to call shares: its error body and an endpoint name without the connection id."""

    provider: UnifiedTo

    def endpoint_name(self, url: str | None) -> str:
        path = urlsplit(url).path if url else "?"
        return path.replace(f"/{quote(self.provider.connection_id, safe='')}", "/{connection_id}")

    def describe_error(self, response: requests.Response) -> str | None:
        return unified_to_error_message(response, (self.provider._integration or {}).get("name"))

    def provider_error_rule(self, response: requests.Response) -> ErrorResolution | None:
        # A list call answers 404 when the connection is unknown (or the LMS behind it has no such object): no
        # retry helps, and the fix is in the config.
        if response.status_code == 404:
            return ErrorResolution(ResponseAction.FAIL, FailureType.config_error,
                                   "Check provider.connection_id (a connection of this workspace and region), and that its LMS supports this object.")
        return None


class UnifiedToStream(UnifiedToHttp, OffsetPageStream):
    """A bare JSON array of records per page, `limit` / `offset`, scoped by the connection id in the path."""

    # Unified.to's documented default `limit`; no maximum is documented, and each page is a live call to the LMS.
    page_size = 100
    # The LMS changes while we page (live reads, offset pages, and for enrollments a changes-first pass then the
    # courses' full re-read): a record changed after the read began may be missed by this read, so the cursor never
    # passes the read's start (less a minute for clocks apart); the next sync asks again from there.
    cursor_lag_seconds = 60

    def since_param(self, sync_mode: SyncMode) -> dict[str, Any]:
        since = self.since_on_server(sync_mode)
        return {"updated_gte": since} if since else {}

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        self.provider.integration()  # first: so that an error of the first list call can name the LMS
        yield from super().records_of_slice(sync_mode, stream_slice)

    def extras(self) -> dict[str, Any]:
        integration = self.provider.integration()
        return {"unified_to_integration": integration["type"], "unified_to_integration_name": integration["name"]}


class UnifiedToConnection(UnifiedToHttp, LmsStream):
    """GET /unified/connection/{connection_id}: only its integration's type and name are kept."""

    unified_name = "connection"

    @property
    def url_base(self) -> str:
        return f"{self.config.base_url}/"

    def path(self, **_: Any) -> str:
        return f"unified/connection/{quote(self.provider.connection_id, safe='')}"

    def next_page_token(self, response: requests.Response) -> None:
        return None

    def describe_error(self, response: requests.Response) -> str | None:
        return unified_to_error_message(response, lms_name=None, own=True)  # Unified.to's own call: no LMS behind it

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        body = self.json_of(response)
        if not isinstance(body, dict):
            raise self.malformed(response, "expected the connection object")
        yield {"integration_type": to_str(body.get("integration_type")), "integration_name": to_str(body.get("integration_name"))}


class UnifiedToUsers(UnifiedToStream):
    """GET /lms/{id}/student (role learner), then GET /lms/{id}/instructor (role instructor), with `updated_gte`.

    A person both lists hold (the same LMS user id) is emitted once, as the student list has it.
    """

    unified_name = "users"
    server_side_filter = True

    def partitions(self) -> Iterable[dict[str, Any]]:
        self._seen: set[str] = set()
        yield {"kind": "student"}
        yield {"kind": "instructor"}

    @property
    def concurrency(self) -> int:
        return 1  # two lists, read one after the other: the second one skips ids the first one had

    def path(self, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> str:
        return (stream_slice or {}).get("kind") or "student"

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        return self.since_param(self._sync_mode)

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        self._sync_mode = sync_mode
        yield from super().records_of_slice(sync_mode, stream_slice)

    def parse_response(self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> Iterable[Mapping[str, Any]]:
        role = "instructor" if (stream_slice or {}).get("kind") == "instructor" else "learner"
        keep_raw, extras = self.config.include_remote_data, self.extras()
        seen = getattr(self, "_seen", set())
        for user in self.mapped(response, lambda raw: to_user(raw, role, keep_raw, extras)):
            if user["id"] not in seen:
                seen.add(user["id"])
                yield user


class UnifiedToCourses(UnifiedToStream):
    """GET /lms/{id}/course with `updated_gte`."""

    unified_name = "courses"
    server_side_filter = True

    def path(self, **_: Any) -> str:
        return "course"

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        return self.since_param(self._sync_mode)

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        self._sync_mode = sync_mode
        yield from super().records_of_slice(sync_mode, stream_slice)

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw, extras = self.config.include_remote_data, self.extras()
        yield from self.mapped(response, lambda raw: to_course(raw, keep_raw, extras))


class UnifiedToActivityList(UnifiedToStream):
    """GET /lms/{id}/activity with the slice's filters (`updated_gte`, `course_id`): raw activity rows."""

    unified_name = "activity_list"

    def path(self, **_: Any) -> str:
        return "activity"

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        return {key: value for key, value in (stream_slice or {}).items() if key in ("updated_gte", "course_id")}

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        yield from self.records_of(response)


class UnifiedToCourseEnrollments(UnifiedToStream):
    """Learner enrollments: GET /lms/{id}/activity, aggregated per student and course ("{student_id}:{course_id}").

    An enrollment is rebuilt from all of its activities, never from the changed ones alone (an activity filter by
    `updated_gte` would otherwise turn a learner at 3 of 4 lessons into one at 1 of 1). So an incremental read asks
    `updated_gte` only which learner×course pairs changed, then re-reads every activity of the courses concerned
    (`course_id` filter; rows of other courses are dropped, for an integration that ignores the filter), or all
    activities once when more than MAX_COURSE_REREADS courses changed or a row named only its content item (then its
    courses come from the content list). A full or sweep read lists every activity once.
    """

    unified_name = "course_enrollments"
    server_side_filter = True
    pair_id = True

    def path(self, **_: Any) -> str:
        return "activity"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        yield from self.records_of(response)  # not used: records come from `records_of_slice`

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        activities = UnifiedToActivityList(self.provider)
        pairs = ActivityPairs(self.provider)
        since = self.since_on_server(sync_mode)
        if since is None:
            rows: Iterable[Mapping[str, Any]] = activities.records_of_slice(SyncMode.full_refresh, {})
            wanted = None
        else:
            wanted = {pair for row in activities.records_of_slice(SyncMode.full_refresh, {"updated_gte": since}) for pair in pairs.of(row)}
            courses = sorted({course for _, course in wanted})
            if not courses:
                return
            if len(courses) > MAX_COURSE_REREADS or pairs.by_content:
                # (rows that name only their content item cannot be found by the course_id filter)
                rows = activities.records_of_slice(SyncMode.full_refresh, {})
            else:
                rows = (row for course in courses for row in activities.records_of_slice(SyncMode.full_refresh, {"course_id": course})
                        if to_str(row.get("course_id")) == course)
        grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        skipped = 0
        for row in rows:
            found = pairs.of(row)
            skipped += not found
            for pair in found:
                if wanted is None or pair in wanted:
                    grouped.setdefault(pair, []).append(row)
        if skipped:
            logger.warning(f"Unified.to: {skipped} activity row(s) name no student, or neither a course nor a content item "
                           "of a course; they belong to no course enrollment and were left out.")
        keep_raw, extras = self.config.include_remote_data, self.extras()
        for (student, course), rows_of_pair in grouped.items():
            try:
                yield to_course_enrollment(student, course, rows_of_pair, keep_raw, extras)
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                raise self.malformed_activity(f"the activities of student {student!r} in course {course!r} could not be read ({error})") from None

    def malformed_activity(self, what: str) -> AirbyteTracedException:
        message = f"Unified.to GET /lms/{{connection_id}}/activity: {what}."
        return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)


class UnifiedToContentList(UnifiedToStream):
    """GET /lms/{id}/content: each content item's `course_ids`."""

    unified_name = "content_list"

    def path(self, **_: Any) -> str:
        return "content"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        yield from self.records_of(response)


class ActivityPairs:
    """The (student_id, course_id) pairs an activity row counts for: its own course, or, for a row that names only
    its content item (the model's `course_id` is for "providers that track at course level"), every course that
    content belongs to (`LmsContent.course_ids`, listed once, only when such a row comes)."""

    def __init__(self, provider: UnifiedTo) -> None:
        self.provider = provider
        self.by_content = False  # whether a row was placed through its content item
        self._courses_of: dict[str, list[str]] | None = None

    def of(self, row: Mapping[str, Any]) -> list[tuple[str, str]]:
        student, course, content = to_str(row.get("student_id")), to_str(row.get("course_id")), to_str(row.get("content_id"))
        if not student:
            return []
        if course:
            return [(student, course)]
        if not content:
            return []
        self.by_content = True
        return [(student, c) for c in self.courses_of().get(content, [])]

    def courses_of(self) -> dict[str, list[str]]:
        if self._courses_of is None:
            self._courses_of = {
                str(item["id"]): [str(c) for c in item.get("course_ids") or [] if c not in (None, "")]
                for item in UnifiedToContentList(self.provider).records_of_slice(SyncMode.full_refresh, {})
            }
        return self._courses_of


def unified_to_error_message(response: requests.Response, lms_name: str | None = None, own: bool = False) -> str | None:
    """The error body's message. Unified.to passes an LMS's own errors on with their status and message unchanged,
    so the message says it may come from either (naming the LMS when the connection is known)."""
    try:
        body = parsed_once(response, lambda r: r.json())
    except ValueError:
        body = None
    message = None
    if isinstance(body, dict):
        value = body.get("message") or body.get("error")
        if isinstance(value, dict):
            value = value.get("message")
        message = to_str(value)
    elif isinstance(body, str):
        message = body
    if message is None and response.text and not response.text.lstrip().startswith(("{", "[", "<")):
        message = response.text.strip()[:200]
    if not message or own:
        return message
    behind = lms_name or "the LMS"
    return f"{message} (said by Unified.to or by {behind} behind the connection: Unified.to passes the LMS's errors on unchanged)"


# ---- mappers: Unified.to's LMS records in, this connector's records out ------------------------------------------


def _emails(value: Any) -> list[dict[str, Any]]:
    """LmsEmail items: `{"email", "type"}` (type WORK / HOME / OTHER); the model has no primary flag."""
    if not isinstance(value, list):
        return []
    return [
        {"email": to_str(item.get("email")), "type": (to_str(item.get("type")) or "").lower() or None, "is_primary": None}
        for item in value
        if isinstance(item, dict) and item.get("email")
    ]


def _present(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, [], {}, "")}


def _grade_number(grade: str) -> float | None:
    """`assigned_grade` is a string: a number ("87.5") is a score, a letter ("B+") is not."""
    try:
        return to_number(grade)
    except (TypeError, ValueError):
        return None


def _seconds(minutes: Any) -> int | None:
    number = to_number(minutes)
    return int(round(number * 60)) if number is not None else None


def to_user(raw: Mapping[str, Any], role: str = "learner", keep_raw: bool = False, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An LmsStudent or LmsInstructor. The models have no status, username, locale or login time: null."""
    first, last = to_str(raw.get("first_name")), to_str(raw.get("last_name"))
    return {
        "id": str(raw["id"]),
        "name": to_str(raw.get("name")) or full_name(first, last),
        "first_name": first,
        "last_name": last,
        "username": None,
        "emails": _emails(raw.get("emails")),
        "status": None,
        "role": role,
        "locale": None,
        "timezone": None,
        "job_title": to_str(raw.get("title")),  # instructors only
        "last_login_at": None,
        "created_at": iso_to_iso(raw.get("created_at")),
        "updated_at": iso_to_iso(raw.get("updated_at")),
        "custom_fields": _present(telephones=raw.get("telephones"), address=raw.get("address"), image_url=raw.get("image_url"), **(extras or {})),
        "remote_data": raw_copy(raw, keep_raw),
    }


def to_course(raw: Mapping[str, Any], keep_raw: bool = False, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An LmsCourse. `is_active` is the only state the model has: true → published, false → disabled."""
    active = to_bool(raw.get("is_active"))
    languages = raw.get("languages") if isinstance(raw.get("languages"), list) else []
    media = raw.get("media") if isinstance(raw.get("media"), list) else []
    categories = raw.get("categories") if isinstance(raw.get("categories"), list) else []
    instructors = raw.get("instructors") if isinstance(raw.get("instructors"), list) else []
    return {
        "id": str(raw["id"]),
        "title": to_str(raw.get("name")),
        "description": to_str(raw.get("description")),
        "code": None,
        "type": "course",
        "status": "unknown" if active is None else "published" if active else "disabled",
        "language": to_str(languages[0]) if languages else None,
        "duration_seconds": _seconds(raw.get("duration_minutes")) if raw.get("duration_minutes") is not None else _seconds(raw.get("time_estimate_minutes")),
        "urls": [{"url": to_str(m.get("url")), "type": (to_str(m.get("type")) or "").lower() or None} for m in media if isinstance(m, dict) and m.get("url")],
        "categories": [{"id": None, "name": str(c)} for c in categories if c not in (None, "")],
        "tags": [],
        "created_at": iso_to_iso(raw.get("created_at")),
        "updated_at": iso_to_iso(raw.get("updated_at")),
        "custom_fields": _present(
            provider_name=to_str(raw.get("provider_name")),  # the content's provider (e.g. a library inside the LMS)
            is_private=to_bool(raw.get("is_private")),
            price_amount=to_number(raw.get("price_amount")),
            currency=to_str(raw.get("currency")),
            skills=raw.get("skills"),
            instructors=[{"id": to_str(i.get("id")), "name": to_str(i.get("name"))} for i in instructors if isinstance(i, dict)],
            published_at=iso_to_iso(raw.get("published_at")),
            **(extras or {}),
        ),
        "remote_data": raw_copy(raw, keep_raw),
    }


def to_course_enrollment(student_id: str, course_id: str, activities: list[Mapping[str, Any]], keep_raw: bool = False,
                         extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One learner's enrollment in one course, from all of their LmsActivity rows in it.

    One row (course-level integrations, e.g. LearnUpon enrollments) is taken as it is. Several rows (one per content
    item) give: completed when every row is, progress the mean of the rows' progress (a completed row without one
    counts 100, other rows without one 0), time the sum, score the mean of the numeric grades, started the
    earliest start, completed the latest completion. `updated_at` is the latest row's, or null when a row has none
    (then a change could go unseen, so the row is re-emitted every sync: design.md §4).
    """
    completed_flags = [to_bool(a.get("is_completed")) for a in activities]
    progress: list[float] = []
    for activity, completed in zip(activities, completed_flags):
        value = to_percent(activity.get("progress_percentage"))
        progress.append(value if value is not None else 100 if completed else 0)
    given_progress = any(a.get("progress_percentage") is not None for a in activities) or any(completed_flags)
    minutes = [to_number(a.get("duration_minutes")) for a in activities if to_number(a.get("duration_minutes")) is not None]
    grades = [to_str(a.get("assigned_grade")) for a in activities if to_str(a.get("assigned_grade"))]
    scores = [number for number in map(_grade_number, grades) if number is not None]
    started = sorted(t for t in (iso_to_iso(a.get("started_at")) for a in activities) if t)
    finished = sorted(t for t in (iso_to_iso(a.get("completed_at")) for a in activities) if t)
    created = sorted(t for t in (iso_to_iso(a.get("created_at")) for a in activities) if t)
    updated = [iso_to_iso(a.get("updated_at")) for a in activities]
    all_completed = bool(activities) and all(completed_flags)
    percent = round(sum(progress) / len(progress), 2) if given_progress else None
    if all_completed:
        status = "completed"
    elif any(completed_flags) or started or (percent or 0) > 0:
        status = "in_progress"
    else:
        status = "enrolled"
    return {
        "id": f"{student_id}:{course_id}",
        "user": {"id": student_id, "name": None, "emails": None},
        "course": {"id": course_id, "title": None},
        "status": status,
        "assigned_at": None,
        "due_at": None,
        "enrolled_at": created[0] if created else None,
        "started_at": started[0] if started else None,
        "last_activity_at": max((t for t in updated if t), default=None),
        "completed_at": finished[-1] if all_completed and finished else None,
        "progress_percent": 100 if all_completed and percent is None else percent,
        "time_spent_seconds": int(round(sum(minutes) * 60)) if minutes else None,
        "score": (scores[0] if len(scores) == 1 else round(sum(scores) / len(scores), 2)) if scores else None,
        "is_mandatory": None,
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": [],
        "created_at": created[0] if created else None,
        "updated_at": None if any(t is None for t in updated) else max(updated),  # type: ignore[type-var]
        "custom_fields": _present(
            activity_ids=[str(a["id"]) for a in activities if a.get("id") is not None],
            content_ids=[str(a["content_id"]) for a in activities if a.get("content_id")],
            grades=grades if grades and len(scores) != len(grades) else None,  # letter grades: no numeric score
            **(extras or {}),
        ),
        "remote_data": {"activities": [dict(a) for a in activities]} if keep_raw else None,
    }

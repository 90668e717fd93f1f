"""TalentLMS, API v1 (https://{portal}.talentlms.com/api/v1): users, courses and per-course enrollments.

Facts: ../shared/docs/providers-talentlms-ispring-docebo.md §1 and §4.
- Auth: HTTP Basic with the API key as user name and an empty password.
- No paging: `/users` and `/courses` return whole collections; enrollments need one `/courses/id:{id}` per course.
- No server-side "changed since" filter on any v1 endpoint, so every stream is read in full and filtered here.
- Dates: `*_timestamp` twins are Unix seconds and preferred; the others are formatted with the portal's
  `date_format` (from `/siteinfo`) and carry no zone: read as UTC (the docs do not say which zone; see README).
- Errors: `{"error": {"type": ..., "message": ...}}`, checked whatever the HTTP status.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping

import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets
from requests.auth import HTTPBasicAuth

from ..base import LmsProvider, LmsStream
from ..http_policy import MAX_SINGLE_WAIT_SECONDS
from ..unified import (
    custom_fields_from,
    datetime_to_iso,
    epoch_to_iso,
    full_name,
    lookup,
    now_iso,
    primary_emails,
    to_number,
    to_percent,
    to_str,
)

logger = logging.getLogger("airbyte")


class TalentLms(LmsProvider):
    provider_type = "talentlms"
    title = "TalentLMS"
    base_url_example = "https://acme.talentlms.com"
    spec_required = ["api_key"]
    spec_properties = {
        "api_key": {
            "type": "string",
            "title": "API key",
            "description": "Account & Settings → Integrations → API. Sent as the HTTP Basic user name.",
            "airbyte_secret": True,
            "order": 2,
        },
    }
    credential_hint = "Check provider.api_key, and that the API is enabled for the portal (Account & Settings → Integrations → API)."
    # TalentLMS limits requests per hour, not at once (the quota is checked before the fan-out, `wait_for_quota`):
    # more courses in flight spend the same quota sooner. 8 keeps a 50 ms-latency sync near its ideal (`make bench`).
    default_concurrency = 8

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/api/v1/"
        self._date_format: str | None = None

    def make_authenticator(self) -> HTTPBasicAuth:
        api_key = str(self.config.provider["api_key"])
        # The Basic header is derived from the key at run time: mask its base64 form too (cdk-notes.md §3).
        add_to_secrets(base64.b64encode(f"{api_key}:".encode()).decode())
        return HTTPBasicAuth(api_key, "")

    def streams(self) -> list[LmsStream]:
        return [TalentLmsUsers(self), TalentLmsCourses(self), TalentLmsCourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        return TalentLmsSiteInfo(self, max_retries=1)

    def wait_for_quota(self, calls_needed: int) -> None:
        """Before the per-course fan-out, ask `/ratelimit` whether the hourly quota covers it.

        When it does not and the quota resets within the longest wait we accept, wait for the reset rather than
        spend the remaining calls into a wall of 429s; otherwise say so and go on (429s are then waited out).
        """
        info = next(iter(TalentLmsRateLimit(self).records_of_slice(SyncMode.full_refresh, {})), {})
        try:
            remaining, reset = int(info.get("remaining")), int(info.get("reset"))
        except (TypeError, ValueError):
            return  # a portal without the endpoint's usual answer: nothing to pace on
        if remaining >= calls_needed:
            return
        wait = reset - time.time()
        if 0 < wait <= MAX_SINGLE_WAIT_SECONDS:
            logger.info(f"TalentLMS /ratelimit: {remaining} calls left and {calls_needed} needed; waiting {wait:.0f} s for the quota to reset.")
            time.sleep(wait)
        else:
            logger.warning(
                f"TalentLMS /ratelimit: {remaining} calls left until the reset in {max(wait, 0):.0f} s, and this sync needs "
                f"{calls_needed}; calls beyond the quota will be retried as the API answers."
            )

    @property
    def date_format(self) -> str:
        """The portal's date format, read once per sync from /siteinfo."""
        if self._date_format is None:
            info = next(iter(TalentLmsSiteInfo(self).records_of_slice(SyncMode.full_refresh, {})), {})
            self._date_format = str(info.get("date_format") or "DDMMYYYY")
        return self._date_format


class TalentLmsStream(LmsStream):
    """v1 returns each collection whole, in one answer."""

    def next_page_token(self, response: requests.Response) -> None:
        return None

    def describe_error(self, response: requests.Response) -> str | None:
        return v1_error_message(response)

    def body_of(self, response: requests.Response) -> Any:
        body = self.json_of(response)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            # v1 may report errors with any status, 200 included (providers doc §1.11).
            raise self.malformed(response, f"TalentLMS reported an error: {body['error'].get('message')}")
        return body

    def list_of(self, response: requests.Response) -> list[Mapping[str, Any]]:
        body = self.body_of(response)
        if not isinstance(body, list) or not all(isinstance(item, dict) and item.get("id") not in (None, "") for item in body):
            raise self.malformed(response, "expected a JSON array of objects, each with an id")
        return body


class TalentLmsSiteInfo(TalentLmsStream):
    """GET /siteinfo: the portal's settings (date format). Also the cheap authenticated call of `check`."""

    unified_name = "siteinfo"

    def path(self, **_: Any) -> str:
        return "siteinfo"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        body = self.body_of(response)
        if not isinstance(body, dict):
            raise self.malformed(response, "expected a JSON object; is provider.base_url a TalentLMS portal?")
        yield body


class TalentLmsRateLimit(TalentLmsStream):
    """GET /ratelimit: `{limit, remaining, reset, formatted_reset}`, the portal's hourly quota."""

    unified_name = "ratelimit"

    def path(self, **_: Any) -> str:
        return "ratelimit"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        body = self.body_of(response)
        if isinstance(body, dict):
            yield body


class TalentLmsUsers(TalentLmsStream):
    """GET /users: every user, in one answer; filtered here on `last_updated_timestamp`."""

    unified_name = "users"

    def path(self, **_: Any) -> str:
        return "users"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        date_format = self.provider.date_format
        keep_raw = self.config.include_remote_data
        for raw in self.list_of(response):
            yield to_user(raw, date_format, keep_raw)


class TalentLmsCourses(TalentLmsStream):
    """GET /courses: every course, in one answer; filtered here on `last_update_on`."""

    unified_name = "courses"

    def path(self, **_: Any) -> str:
        return "courses"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        date_format = self.provider.date_format
        keep_raw = self.config.include_remote_data
        for raw in self.list_of(response):
            yield to_course(raw, date_format, keep_raw)


class TalentLmsCourseEnrollments(TalentLmsStream):
    """GET /courses/id:{id} for each course of GET /courses, joined with GET /users for names and e-mails.

    A course row has no modification time and progress moves none of its timestamps, so `updated_at` is null and
    every enrollment is emitted by every sync (design.md §4). Instructor rows are not learner enrollments.
    """

    unified_name = "course_enrollments"
    pair_id = True  # ids are "{user_id}:{course_id}": a tombstone still names both
    ignore_not_found = True  # a course deleted after /courses listed it answers 404

    def __init__(self, provider: TalentLms, **kwargs: Any) -> None:
        super().__init__(provider, **kwargs)
        self._people: dict[str, dict[str, Any]] = {}

    def partitions(self) -> Iterable[dict[str, Any]]:
        self._people = self.person_directory(TalentLmsUsers(self.provider))
        course_ids = [str(course["id"]) for course in TalentLmsCourseList(self.provider).records_of_slice(SyncMode.full_refresh, {})]
        self.provider.wait_for_quota(len(course_ids))
        for course_id in course_ids:
            yield {"course_id": course_id}

    def path(self, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> str:
        return f"courses/id:{stream_slice['course_id']}"

    def parse_response(self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> Iterable[Mapping[str, Any]]:
        if response.status_code == 404:  # vanished course, already logged as a warning by the error handler
            return
        course = self.body_of(response)
        if not isinstance(course, dict) or not isinstance(course.get("users", []), list):
            raise self.malformed(response, "expected a course object with a users array")
        keep_raw = self.config.include_remote_data
        now = now_iso()
        for row in course.get("users") or []:
            if not isinstance(row, dict) or row.get("id") in (None, ""):
                raise self.malformed(response, "a users[] row has no id")
            if is_learner_row(row):
                yield to_course_enrollment(row, course, self._people.get(str(row["id"])), now, keep_raw)


class TalentLmsCourseList(TalentLmsStream):
    """GET /courses, unmapped: the parent list of the enrollment fan-out."""

    unified_name = "course_list"

    def path(self, **_: Any) -> str:
        return "courses"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        yield from self.list_of(response)


def v1_error_message(response: requests.Response) -> str | None:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("message") if isinstance(error, dict) else None


# ---- mappers: raw v1 payloads in, unified records out ----------------------------------------------------------

_PORTAL_DATE_FORMATS = {"DDMMYYYY": "%d/%m/%Y", "MMDDYYYY": "%m/%d/%Y", "YYYYMMDD": "%Y/%m/%d"}
_CUSTOM_FIELD_PREFIX = ("custom_field_",)
# Keys that are bearer-style auto-login links: never stored (providers doc §1.12 item 6).
_SECRET_KEYS = frozenset({"login_key"})

USER_STATUS = {"active": "active", "inactive": "inactive"}
COURSE_STATUS = {"active": "published", "inactive": "disabled"}
_TIME_TOKEN = re.compile(r"(\d+)\s*([hms])")


def portal_date_to_iso(value: Any, date_format: str) -> str | None:
    """A formatted v1 date ("25/12/2019, 03:58:40", "12/25/2019, 03:58:40 PM", "06/08/2019") to ISO UTC."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    date_part = _PORTAL_DATE_FORMATS.get(date_format, "%d/%m/%Y")
    if text.endswith(("AM", "PM", "am", "pm")):
        pattern = f"{date_part}, %I:%M:%S %p" if text.count(":") == 2 else f"{date_part}, %I:%M %p"
    elif "," in text:
        pattern = f"{date_part}, %H:%M:%S" if text.count(":") == 2 else f"{date_part}, %H:%M"
    else:
        pattern = date_part
    return datetime_to_iso(datetime.strptime(text, pattern).replace(tzinfo=timezone.utc))


def duration_to_seconds(value: Any) -> int | None:
    """`total_time` as v1 writes it ("1h 2m 3s", "3m 17s", "0s") to seconds."""
    if value in (None, ""):
        return None
    tokens = _TIME_TOKEN.findall(str(value))
    if not tokens:
        return None
    unit = {"h": 3600, "m": 60, "s": 1}
    return sum(int(amount) * unit[letter] for amount, letter in tokens)


def user_role(user_type: Any) -> str:
    """`user_type` is a portal-defined type name; the defaults are SuperAdmin, Admin-Type, Trainer-Type, Learner-Type."""
    text = str(user_type or "").lower()
    if "admin" in text:
        return "admin"
    if "trainer" in text or "instructor" in text:
        return "instructor"
    if "learner" in text:
        return "learner"
    return "other"


def _remote(raw: Mapping[str, Any], keep: bool) -> dict[str, Any] | None:
    if not keep:
        return None
    return {key: value for key, value in raw.items() if key not in _SECRET_KEYS}


def to_user(raw: Mapping[str, Any], date_format: str, keep_raw: bool = False) -> dict[str, Any]:
    status = lookup(USER_STATUS, raw.get("status"))
    deactivation = portal_date_to_iso(raw.get("deactivation_date"), date_format)
    if status == "active" and deactivation is not None and deactivation <= now_iso():
        status = "inactive"
    first, last = to_str(raw.get("first_name")), to_str(raw.get("last_name"))
    return {
        "id": str(raw["id"]),
        "name": full_name(first, last),
        "first_name": first,
        "last_name": last,
        "username": to_str(raw.get("login")),
        "emails": primary_emails(to_str(raw.get("email"))),
        "status": status,
        "role": user_role(raw.get("user_type")),
        "locale": to_str(raw.get("language")),
        "timezone": to_str(raw.get("timezone")),
        "job_title": None,
        "last_login_at": None,
        "created_at": portal_date_to_iso(raw.get("created_on"), date_format),
        "updated_at": epoch_to_iso(raw.get("last_updated_timestamp")),
        "custom_fields": custom_fields_from(raw, _CUSTOM_FIELD_PREFIX),
        "remote_data": _remote(raw, keep_raw),
    }


def to_course(raw: Mapping[str, Any], date_format: str, keep_raw: bool = False) -> dict[str, Any]:
    urls = []
    if str(raw.get("shared")) == "1" and raw.get("shared_url"):
        urls.append({"url": raw["shared_url"], "type": "share"})
    if raw.get("avatar"):
        urls.append({"url": raw["avatar"], "type": "image"})
    category_id = to_str(raw.get("category_id"))
    return {
        "id": str(raw["id"]),
        "title": to_str(raw.get("name")),
        "description": to_str(raw.get("description")),
        "code": to_str(raw.get("code")),
        "type": "course",  # v1 has no course type: everything listed is a course
        "status": lookup(COURSE_STATUS, raw.get("status")),
        "language": None,
        "duration_seconds": None,  # time_limit is days of access, not a duration
        "urls": urls,
        "categories": [{"id": category_id, "name": None}] if category_id else [],
        "tags": [],
        "created_at": portal_date_to_iso(raw.get("creation_date"), date_format),
        "updated_at": portal_date_to_iso(raw.get("last_update_on"), date_format),
        "custom_fields": custom_fields_from(raw, _CUSTOM_FIELD_PREFIX),
        "remote_data": _remote(raw, keep_raw),
    }


def is_learner_row(row: Mapping[str, Any]) -> bool:
    """Instructor rows give a teaching role, not a learner enrollment (design.md §4): not emitted."""
    return str(row.get("role") or "learner").lower() != "instructor"


def enrollment_status(row: Mapping[str, Any], now: str) -> str:
    """The TalentLMS rules of providers doc §4.2, top to bottom; the first match wins."""
    return _status(row, now, epoch_to_iso(row.get("completed_on_timestamp")), to_number(row.get("completion_percentage")), _time_spent(row))


def _status(row: Mapping[str, Any], now: str, completed_at: str | None, percent: int | float | None, time_spent: int | None) -> str:
    # The row's converted values come in from the mapper, which needs them too: each is computed once per record.
    completion = str(row.get("completion_status") or "").strip().lower()
    if completion == "completed" or completed_at:
        return "completed"
    if completion in ("failed", "not_passed", "not passed"):
        return "failed"
    expired = epoch_to_iso(row.get("expired_on_timestamp"))
    if expired is not None and expired <= now:
        return "expired"
    if (percent is not None and percent > 0) or (completion == "incomplete" and time_spent):
        return "in_progress"
    if completion in ("not_attempted", "incomplete") or percent == 0:
        return "enrolled"
    return "unknown"


def _time_spent(row: Mapping[str, Any]) -> int | None:
    seconds = to_number(row.get("total_time_seconds"))
    return int(seconds) if seconds is not None else duration_to_seconds(row.get("total_time"))


def to_course_enrollment(
    row: Mapping[str, Any],
    course: Mapping[str, Any],
    person: Mapping[str, Any] | None,
    now: str,
    keep_raw: bool = False,
) -> dict[str, Any]:
    """A `course.users[]` row of GET /courses/id:{id}; `person` is the /users join (the row's name is abbreviated)."""
    user_id, course_id = str(row["id"]), str(course["id"])
    enrolled_at = epoch_to_iso(row.get("enrolled_on_timestamp"))
    completed_at = epoch_to_iso(row.get("completed_on_timestamp"))
    percent = to_number(row.get("completion_percentage"))
    time_spent = _time_spent(row)
    unit_url = to_str(row.get("last_accessed_unit_url"))
    return {
        "id": f"{user_id}:{course_id}",
        "user": {
            "id": user_id,
            "name": person["name"] if person else None,
            "emails": person["emails"] if person else [],
        },
        "course": {"id": course_id, "title": to_str(course.get("name"))},
        "status": _status(row, now, completed_at, percent, time_spent),
        "assigned_at": None,  # v1 has one enrolled_on, whether self- or admin-enrolled is unknowable
        "due_at": None,  # v1 has no due date; expired_on is access expiry
        "enrolled_at": enrolled_at,
        "started_at": None,
        "last_activity_at": None,
        "completed_at": completed_at,
        "progress_percent": to_percent(percent),
        "time_spent_seconds": time_spent,
        "score": None,  # course-level score is not in v1 course rows
        "is_mandatory": None,
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": [{"url": unit_url, "type": "launch"}] if unit_url else [],
        "created_at": enrolled_at,
        "updated_at": None,  # no per-enrollment modification time exists (design.md §4): always emitted
        "custom_fields": {},
        "remote_data": dict(row) if keep_raw else None,
    }

"""Fake Truto unified LMS API over TalentLMS, as documented (../shared/docs/providers-unified-northpass.md §2).

- `Authorization: Bearer <api token>`; a wrong token answers 401 with Truto's error body.
- `integrated_account_id` on every request: missing → 400, unknown → 404 (Truto's own errors).
- `GET /unified/lms/users`, `/users/{id}`, `/courses`, `/courses/{id}`, `/course-enrollments`; list answers are
  `{"result": [...], "next_cursor": "…" | null}`, paged by `limit` (default 50 here: Truto documents none) and
  `next_cursor`.
- Course enrollments need a filter for TalentLMS: `course[id]` (and, with `require_user_and_course`, the strict
  reading of the docs, `user[id]` too) or 400. An unknown course is a remote 404 (`truto_is_remote_error`).
- Records in Truto's unified shape with ISO 8601 millisecond timestamps; TalentLMS enrollments carry only the
  fields Truto marks supported for it (seed 003). `truto_ignore_remote_data=true` drops `remote_data`.
- Every answer carries `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset` (seconds until the window
  ends); a 429 (fault) is a remote error with `ratelimit-reset` and, when given, `Retry-After`.
- Behind TalentLMS v1: deleted users and withdrawn enrollments are not listed; only learners are enrollments.
"""

from __future__ import annotations

import time
from typing import Any

from .dataset import Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse, cursor_page

API_TOKEN = "truto-fake-token-6f1c0d9a2b3e4f5a"
ACCOUNT_ID = "62f44730-dd91-461e-bd6a-aedd9e0ad79d"
DEFAULT_LIMIT = 50
_REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable"}
_STATUS = {"not_started": "enrolled", "assigned": "assigned", "in_progress": "in_progress", "completed": "completed",
           "passed": "passed", "failed": "failed", "expired": "expired", "withdrawn": "withdrawn"}


def truto_error(status: int, message: str, remote: Any = None) -> FakeResponse:
    body: dict[str, Any] = {"statusCode": status, "error": _REASONS.get(status, "Error"), "message": message}
    if remote is not None:
        body.update({"truto_is_remote_error": True, "raw_response": remote})
    return FakeResponse(status, body)


def iso_ms(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch)) if epoch else None


class TrutoApp(FakeProviderApp):
    name = "truto"
    stream_paths = {"users": "/unified/lms/users", "courses": "/unified/lms/courses",
                    "course_enrollments": "/unified/lms/course-enrollments"}

    def __init__(self, data: Dataset, api_token: str = API_TOKEN, account_id: str = ACCOUNT_ID,
                 require_user_and_course: bool = False, **options: Any) -> None:
        super().__init__(data, **options)
        self.api_token = api_token
        self.account_id = account_id
        self.require_user_and_course = require_user_and_course in (True, "true", "1")
        self.remaining = 2000  # the LMS's hourly quota, as Truto normalises it

    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "truto", "base_url": base_url, "api_token": self.api_token, "integrated_account_id": self.account_id}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {**self.config(base_url), "api_token": "wrong-" + self.api_token[6:]}

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        response = truto_error(429, "API rate limit exceeded", {"error": {"type": "rate_limit_error", "message": "API rate limit exceeded"}})
        # Truto forwards the LMS's Retry-After when there is one; ratelimit-reset is always there.
        response.headers.update({"ratelimit-limit": "2000", "ratelimit-remaining": "0", "ratelimit-reset": str(int(retry_after or 1))})
        if retry_after is not None:
            response.headers["Retry-After"] = str(int(retry_after))
        return response

    def server_error(self, status: int) -> FakeResponse:
        return truto_error(status, "Internal server error")

    def not_found(self) -> FakeResponse:
        return truto_error(404, "The requested course does not exist",
                           {"error": {"type": "invalid_request_error", "message": "The requested course does not exist"}})

    # ---- what TalentLMS behind Truto lists ------------------------------------------------------------------------
    def listed_people(self) -> list[Person]:
        return [p for p in self.data.people.values() if p.status != "deleted"]

    def listed_enrollments(self) -> list[Enrollment]:
        return [e for e in super().listed_enrollments() if e.state != "withdrawn" and e.role == "learner"]

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return f"{enrollment.user_id}_{enrollment.course_id}"

    # ---- routing ------------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        response = self._route(request)
        self.remaining = max(0, self.remaining - 1)
        response.headers.setdefault("ratelimit-limit", "2000")
        response.headers.setdefault("ratelimit-remaining", str(self.remaining))
        response.headers.setdefault("ratelimit-reset", "3600")
        return response

    def _route(self, request: FakeRequest) -> FakeResponse:
        if request.headers.get("authorization") != f"Bearer {self.api_token}":
            return truto_error(401, "Invalid API token")
        if not request.path.startswith("/unified/lms/"):
            return truto_error(404, "Not found")
        account = request.arg("integrated_account_id")
        if not account:
            return truto_error(400, "integrated_account_id is required")
        if account != self.account_id:
            return truto_error(404, "Integrated account not found")
        resource, _, item_id = request.path[len("/unified/lms/"):].strip("/").partition("/")
        keep_remote = request.arg("truto_ignore_remote_data") != "true"
        if resource == "users":
            people = {str(p.id): p for p in self.listed_people()}
            if item_id:
                return FakeResponse(200, self.user(people[item_id], keep_remote)) if item_id in people else self.not_found()
            return self.listing(request, [self.user(p, keep_remote) for p in people.values()])
        if resource == "courses":
            if item_id:
                course = self.data.courses.get(_int(item_id))
                return FakeResponse(200, self.course(course, keep_remote)) if course else self.not_found()
            return self.listing(request, [self.course(c, keep_remote) for c in self.data.courses.values()])
        if resource == "course-enrollments" and not item_id:
            course_id, user_id = request.arg("course[id]"), request.arg("user[id]")
            if not course_id or (self.require_user_and_course and not user_id):
                missing = "course.id" if not course_id else "user.id"
                return truto_error(400, f"{missing} is required for this integration")
            if _int(course_id) not in self.data.courses:
                return self.not_found()
            rows = [e for e in self.listed_enrollments() if e.course_id == _int(course_id) and (not user_id or str(e.user_id) == user_id)]
            return self.listing(request, [self.enrollment(e, keep_remote) for e in rows])
        return truto_error(404, f"Resource {resource} not found in unified model lms")

    def listing(self, request: FakeRequest, records: list[dict[str, Any]]) -> FakeResponse:
        try:
            limit = int(request.arg("limit") or DEFAULT_LIMIT)
            page, following = cursor_page(records, request.arg("next_cursor"), limit)
        except (ValueError, KeyError):
            return truto_error(400, "Invalid next_cursor or limit")
        return FakeResponse(200, {"result": page, "next_cursor": following})

    # ---- rendering (Truto's unified objects) -------------------------------------------------------------------------
    @staticmethod
    def user(p: Person, keep_remote: bool) -> dict[str, Any]:
        record = {
            "id": str(p.id), "first_name": p.first_name, "last_name": p.last_name, "name": f"{p.first_name} {p.last_name}",
            "username": p.login, "emails": [{"email": p.email, "type": "work", "is_primary": True}] if p.email else [],
            "status": "active" if p.status == "active" else "inactive", "role": p.role, "phones": [],
            "locale": p.language, "timezone": p.timezone, "job_title": p.job_title, "organization": None, "manager": None,
            "created_at": iso_ms(p.created), "updated_at": iso_ms(p.updated), "custom_fields": {"department": p.custom.get("department")},
        }
        if keep_remote:
            record["remote_data"] = {"id": str(p.id), "login": p.login, "email": p.email or "", "last_updated_timestamp": str(p.updated)}
        return record

    @staticmethod
    def course(c, keep_remote: bool) -> dict[str, Any]:
        record = {
            "id": str(c.id), "title": c.name, "description": c.description or None, "code": c.code, "type": c.kind,
            "status": {"active": "published", "inactive": "disabled", "draft": "draft"}[c.status], "language": c.language,
            "duration_seconds": c.duration_seconds, "level": None,
            "urls": [{"url": f"https://acme.talentlms.com/learner/courseinfo/id:{c.id}", "type": "launch"}],
            "tags": [], "categories": [{"id": c.category[0], "name": c.category[1]}], "organization": None,
            "published_at": iso_ms(c.created), "created_at": iso_ms(c.created), "updated_at": iso_ms(c.updated),
            "custom_fields": {"owner": c.custom.get("owner")},
        }
        if keep_remote:
            record["remote_data"] = {"id": str(c.id), "name": c.name, "code": c.code, "status": c.status}
        return record

    def enrollment(self, e: Enrollment, keep_remote: bool) -> dict[str, Any]:
        person, course = self.data.people[e.user_id], self.data.courses[e.course_id]
        done = e.completed if e.state in ("completed", "passed", "failed") else None
        # Only the fields Truto marks "supported" for TalentLMS (seed 003); the rest are absent.
        record = {
            "id": self.enrollment_record_id(e),
            "user": {"id": str(person.id), "name": f"{person.first_name} {person.last_name}",
                     "emails": [{"email": person.email, "type": "work", "is_primary": True}] if person.email else []},
            "course": {"id": str(course.id), "title": course.name},
            "status": _STATUS[e.state], "enrolled_at": iso_ms(e.enrolled), "completed_at": iso_ms(done),
            "progress_percent": e.progress, "time_spent_seconds": e.time_spent, "updated_at": iso_ms(e.updated),
        }
        if keep_remote:
            record["remote_data"] = {"id": str(person.id), "role": e.role, "completion_percentage": str(e.progress)}
        return record


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return -1

"""Fake StackOne unified LMS API, as documented (StackOneHQ/hub-docs lms/api-reference/lms.json and its guides;
docs/providers/stackone.md), over a Docebo-like LMS behind it.

- `Authorization: Basic base64("<api key>:")` (the SDKs' user name + empty password, `curl -u "$KEY:"`) or
  `Basic base64("<api key>")` (the authentication guide's form); anything else → 401 `UnauthorizedResponse`.
- `x-account-id` on every unified call: missing → 400 `BadRequestResponse`; unknown → 404 `NotFoundResponse`.
- `GET /unified/lms/users`, `/courses`, `/content`, `/assignments`, `/completions`, `/users/{id}/assignments`,
  `/users/{id}/completions`: `{"next": "…" | null, "data": [...]}` paged by `page_size` (a string, default 25; not
  a positive integer → 400) and `next`; `filter[updated_after]` (and the deprecated `updated_after`) keeps records
  updated strictly after it; `raw=true` adds the page's `raw` array (the LMS's own answers, per page, not per record).
- Records in StackOne's schemas: ids are StackOne's own (`remote_id` is the LMS's), enums `{"value",
  "source_value"}`, ISO 8601 with milliseconds. Courses of kind `path` are collections (assignable, no list: their
  assignments cannot be joined); every third course is a content item (a video) listed by `/content`.
- Assignments: learners only; a withdrawn learner's assignment is gone; a learner who completed a course they were
  not assigned has a completion only. Completions: completed, passed and failed learners (`result` Pass / Fail).
- Deleted records are gone from every list (StackOne documents no deletion flag).
- `GET /accounts/{id}/meta` (platform API, the account in the path): `{"provider": "docebo", "category": "lms",
  "models": {}}`; an unknown account → 404.
- Rate limit: `limit` requests per `window` seconds per API key (1,000 a minute by default); a 429 carries
  `Retry-After` in seconds and `TooManyRequestsResponse`. A 502 carries `provider_errors` (the LMS's answer).
"""

from __future__ import annotations

import base64
import time
from datetime import datetime, timezone
from typing import Any

from .dataset import Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse, cursor_page

API_KEY = "v1.eu1.fake_stackone_key_3f9a0c1d2e"
ACCOUNT_ID = "46132201201510402136"
PREFIX = "/unified/lms/"
_KINDS = {"usr": "u", "crs": "c", "cnt": "t", "col": "l", "asg": "a", "cmp": "p"}
_STATUS = {"not_started": "pending", "assigned": "pending", "in_progress": "in_progress", "completed": "completed",
           "passed": "completed", "failed": "completed", "expired": "unmapped_value"}
_DONE = ("completed", "passed", "failed")


def stackone_id(kind: str, number: int | str) -> str:
    """StackOne's ids are its own opaque strings (e.g. `c28xyrc55866bvuv`), unrelated to the LMS's ids."""
    return f"c28x{_KINDS[kind]}{int(number):07d}"


def iso_ms(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch)) if epoch else None


def duration(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"PT{hours}H{minutes}M{secs}S"


def error(status: int, message: str, **extra: Any) -> FakeResponse:
    body = {"statusCode": status, "message": message, "timestamp": iso_ms(int(time.time())), **extra}
    return FakeResponse(status, body)


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


class StackOneApp(FakeProviderApp):
    name = "stackone"
    stream_paths = {"users": "/unified/lms/users", "courses": "/unified/lms/courses",
                    "course_enrollments": "/unified/lms/assignments"}

    def __init__(self, data: Dataset, api_key: str = API_KEY, account_id: str = ACCOUNT_ID,
                 limit: int = 1000, window: float = 60.0, lms: str = "docebo", **options: Any) -> None:
        super().__init__(data, **options)
        self.lms = lms  # the linked account's provider, as GET /accounts/{id}/meta names it
        self.api_key = api_key
        self.account_id = account_id
        self.limit = int(limit)
        self.window = float(window)
        self._window: tuple[float, int] = (time.time(), 0)

    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "stackone", "base_url": base_url, "api_key": self.api_key, "account_id": self.account_id}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {**self.config(base_url), "api_key": "v1.eu1.wrong_" + self.api_key[-12:]}

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        response = error(429, "Too many requests")
        if retry_after is not None:
            response.headers["Retry-After"] = str(int(retry_after))  # StackOne sends seconds
        return response

    def server_error(self, status: int) -> FakeResponse:
        if status == 502:
            return error(502, "Bad Gateway", provider_errors=[{
                "status": 503, "url": "https://acme.docebosaas.com/manage/v1/user?page=1",
                "raw": {"error": "Service temporarily unavailable"}, "headers": {"content-type": "application/json"}}])
        return error(status, "Internal server error")

    def not_found(self) -> FakeResponse:
        return error(404, "Not Found")

    # ---- what StackOne lists ---------------------------------------------------------------------------------------
    def listed_people(self) -> list[Person]:
        return [p for p in self.data.people.values() if p.status != "deleted"]  # the LMS behind lists no deleted user

    @staticmethod
    def kind_of(course: Course) -> str:
        if course.kind == "path":
            return "col"
        return "cnt" if course.id % 3 == 0 else "crs"

    def listed_courses(self) -> list[Course]:
        return [c for c in self.data.courses.values() if self.kind_of(c) != "col"]

    def listed_enrollments(self) -> list[Enrollment]:
        return [e for e in super().listed_enrollments() if e.role == "learner" and e.state != "withdrawn"]

    def user_record_id(self, person: Person) -> str:
        return stackone_id("usr", person.id)

    def course_record_id(self, course: Course) -> str:
        return stackone_id(self.kind_of(course), course.id)

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return f"{stackone_id('usr', enrollment.user_id)}:{self.course_record_id(self.data.courses[enrollment.course_id])}"

    # ---- routing -----------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        if not self._authorized(request.headers.get("authorization", "")):
            return error(401, "Unauthorized")
        if not self._count():
            return self.rate_limited(max(1, int(self._window[0] + self.window - time.time()) + 1))
        if request.path.startswith("/accounts/") and request.path.endswith("/meta"):
            # The platform API: the linked account is in the path; no x-account-id.
            if request.path != f"/accounts/{self.account_id}/meta":
                return error(404, "Not Found")
            return FakeResponse(200, {"provider": self.lms, "category": "lms", "models": {}})
        if not request.path.startswith(PREFIX):
            return self.not_found()
        account = request.headers.get("x-account-id")
        if not account:
            return error(400, "Bad Request", data={"statusCode": 400, "message": "x-account-id header is required"})
        if account != self.account_id:
            return error(404, "Account not found")
        return self._route(request)

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return decoded in (f"{self.api_key}:", self.api_key)

    def _count(self) -> bool:
        start, count = self._window
        now = time.time()
        if now - start >= self.window:
            start, count = now, 0
        self._window = (start, count + 1)
        return count + 1 <= self.limit

    def _route(self, request: FakeRequest) -> FakeResponse:
        parts = request.path[len(PREFIX):].strip("/").split("/")
        learner = None
        if len(parts) == 3 and parts[0] == "users" and parts[2] in ("assignments", "completions"):
            people = {self.user_record_id(p): p for p in self.listed_people()}
            if parts[1] not in people:
                return error(404, "Not Found")
            learner, parts = people[parts[1]].id, [parts[2]]
        if len(parts) != 1:
            return self.not_found()
        resource = parts[0]
        if resource == "users":
            records = [self.user(p) for p in self.listed_people()]
        elif resource == "courses":
            records = [self.course(c) for c in self.listed_courses() if self.kind_of(c) == "crs"]
        elif resource == "content":
            records = [self.content(c) for c in self.listed_courses() if self.kind_of(c) == "cnt"]
        elif resource in ("assignments", "completions"):
            rows = [e for e in self._learning_rows() if learner is None or e.user_id == learner]
            if resource == "assignments":
                records = [self.assignment(e) for e in rows if self.has_assignment(e)]
            else:
                records = [self.completion(e) for e in rows if e.state in _DONE and e.completed]
        else:
            return self.not_found()
        since = request.arg("filter[updated_after]") or request.arg("updated_after")
        if since:
            try:
                floor = _epoch(since)
            except ValueError:
                return error(400, "Bad Request", data={"statusCode": 400, "message": "filter.updated_after must be a date-time"})
            records = [r for r in records if r.get("updated_at") and _epoch(r["updated_at"]) > floor]
        return self.listing(request, records)

    def _learning_rows(self) -> list[Enrollment]:
        """Learner rows of the LMS, collections included (their learning objects are not listed)."""
        people = {p.id for p in self.listed_people()}
        return [e for e in self.data.enrollments.values()
                if e.role == "learner" and e.state != "withdrawn" and e.user_id in people and e.course_id in self.data.courses]

    def listing(self, request: FakeRequest, records: list[dict[str, Any]]) -> FakeResponse:
        size_text = request.arg("page_size") or "25"
        if not size_text.isdigit() or int(size_text) < 1:
            return error(400, "Bad Request", data={"statusCode": 400, "message": "page_size must be a positive integer"})
        try:
            page, following = cursor_page(records, request.arg("next"), int(size_text))
        except (ValueError, KeyError):
            return error(400, "Bad Request", data={"statusCode": 400, "message": "Invalid next cursor"})
        body: dict[str, Any] = {"next": following, "data": page}
        if request.arg("raw") == "true":
            body["raw"] = [{"method": "GET", "url": f"https://acme.docebosaas.com/manage/v1/{request.path.rsplit('/', 1)[-1]}",
                            "response": {"data": {"items": [{"id": r.get("remote_id")} for r in page]}}}]
        return FakeResponse(200, body)

    # ---- rendering (StackOne's unified objects) ---------------------------------------------------------------------
    def user(self, p: Person) -> dict[str, Any]:
        return {
            "id": self.user_record_id(p), "remote_id": str(p.id), "external_reference": p.login,
            "unified_custom_fields": {"department": p.custom.get("department")},
            "name": f"{p.first_name} {p.last_name}", "email": p.email, "phone_number": None,
            # LmsUser.active: a boolean, or "true" / "false" as a string where the integration passes it through
            "active": (p.status == "active") if p.id % 4 else ("true" if p.status == "active" else "false"),
            "created_at": iso_ms(p.created), "updated_at": iso_ms(p.updated),
        }

    def _learning_object(self, c: Course) -> dict[str, Any]:
        return {
            "id": self.course_record_id(c), "remote_id": str(c.id), "external_reference": c.code,
            "unified_custom_fields": {"owner": c.custom.get("owner")},
            "title": c.name, "description": c.description or None,
            "languages": [{"value": {"en": "en_GB", "el": "el_GR", "de": "de_DE", "fr": "fr_FR", "es": "es_ES"}[c.language], "source_value": c.language}] if c.language else [],
            "cover_url": f"https://acme.docebosaas.com/img/{c.id}.png", "active": c.status == "active",
            "duration": duration(c.duration_seconds),
            "categories": [{"id": stackone_id("crs", int(c.category[0])), "remote_id": c.category[0], "name": c.category[1], "active": True}],
            "skills": [], "provider": None, "authors": [],
            "created_at": iso_ms(c.created), "updated_at": iso_ms(c.updated),
        }

    def course(self, c: Course) -> dict[str, Any]:
        return {**self._learning_object(c), "content_ids": [], "remote_content_ids": [],
                "url": f"https://acme.docebosaas.com/learn/course/{c.id}"}

    def content(self, c: Course) -> dict[str, Any]:
        return {**self._learning_object(c), "course_ids": [], "remote_course_ids": [],
                "content_url": f"https://acme.docebosaas.com/learn/video/{c.id}", "mobile_launch_content_url": None,
                "content_type": {"value": "video", "source_value": "video"}, "order": None, "tags": ["Safety"],
                "localizations": [], "short_description": None}

    def _object_ref(self, e: Enrollment) -> dict[str, Any]:
        course = self.data.courses[e.course_id]
        kind = self.kind_of(course)
        return {"learning_object_id": stackone_id(kind, course.id), "remote_learning_object_id": str(course.id),
                "learning_object_external_reference": course.code,
                "learning_object_type": {"value": {"crs": "course", "cnt": "content", "col": "collection"}[kind], "source_value": course.kind}}

    @staticmethod
    def has_assignment(e: Enrollment) -> bool:
        # A learner who chose and completed a course of their own accord has a completion and no assignment.
        return e.assigned or e.state not in _DONE

    def assignment(self, e: Enrollment) -> dict[str, Any]:
        done = e.state in _DONE
        return {
            "id": stackone_id("asg", e.id), "remote_id": f"{e.user_id}-{e.course_id}", "unified_custom_fields": {},
            "external_reference": None, **self._object_ref(e),
            "user_id": stackone_id("usr", e.user_id), "remote_user_id": str(e.user_id),
            "progress": e.progress, "status": {"value": _STATUS[e.state], "source_value": e.state},
            "result": {"value": {"passed": "Pass", "failed": "Fail"}[e.state], "source_value": e.state} if e.state in ("passed", "failed") else None,
            "assigned_at": iso_ms(e.enrolled), "due_date": iso_ms(e.due), "completed_at": iso_ms(e.completed) if done else None,
            "certificate_url": f"https://acme.docebosaas.com/certificates/{e.id}.pdf" if e.state == "passed" else None,
            "created_at": iso_ms(e.enrolled), "updated_at": iso_ms(e.updated),
        }

    def completion(self, e: Enrollment) -> dict[str, Any]:
        return {
            "id": stackone_id("cmp", e.id), "remote_id": f"cmp-{e.id}", "unified_custom_fields": {},
            "external_reference": None, **self._object_ref(e),
            "user_id": stackone_id("usr", e.user_id), "remote_user_id": str(e.user_id),
            "result": {"value": {"passed": "Pass", "failed": "Fail"}.get(e.state), "source_value": e.state},
            "completed_at": iso_ms(e.completed), "time_spent": duration(e.time_spent),
            "score": {"percentage": e.score, "raw_value": f"{e.score} / 100"} if e.score is not None else None,
            "certificate_url": None, "created_at": iso_ms(e.completed), "updated_at": iso_ms(e.completed),
        }

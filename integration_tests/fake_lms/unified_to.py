"""Fake Unified.to LMS API, as documented (docs/providers/unified_to.md has the sources).

- `Authorization: Bearer <workspace API token>` (docs.unified.to/reference/rest); wrong or missing → 401.
- The connection is a path segment: `GET /lms/{connection_id}/student`, `/instructor`, `/course`, `/activity`;
  an unknown connection → 404. `GET /unified/connection/{connection_id}` names the integration behind it.
- Lists answer a bare JSON array (`LmsStudents`, `LmsCourses`, `LmsActivities` are arrays), paged by `limit`
  (default 100) and `offset` (default 0).
- `updated_gte` keeps records updated at or after it, where the integration supports it (`updated_gte=False` builds a
  fake of an integration that ignores it, as its "List options" would say); `course_id` / `student_id` filter
  activities. `raw` is a parameter passed on to the LMS (not a switch): records always carry their `raw` payload.
- Records: `LmsStudent` / `LmsInstructor` (id, created_at, updated_at, name, first_name, last_name, emails
  [{email, type}], telephones, image_url, title for instructors, raw), `LmsCourse` (name, description, is_active,
  languages, categories as strings, media, instructors [{id, name}], duration_minutes, raw), `LmsActivity`
  (student_id, course_id, content_id, is_completed, progress_percentage, started_at, completed_at,
  duration_minutes, assigned_grade as a string, raw). Odd courses track at course level (one activity per learner,
  as LearnUpon enrollments do); even courses per content item (three activities per learner, of which only the
  last moves when the enrollment changes). The model's `course_id` is for "providers that track at course level":
  `content_rows_name_course=False` leaves it out of content-level rows, whose course is then the content item's
  (`GET /lms/{id}/content`: `LmsContent.course_ids`).
- Deletions: gone from the lists (the models have no deleted flag).
- Errors: the body's shape is not documented; `{"message": ...}` here. A 429 carries `Retry-After` when set.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from .dataset import Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse

API_TOKEN = "eyJhbGciOiJIUzI1NiJ9.fake-unified-workspace-token.c2lnbmF0dXJl"
CONNECTION_ID = "65e8a2c1f0b3a47d9c2e1b05"
CONTENT_ITEMS = 3  # activities per learner in a course tracked per content item


def iso(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch)) if epoch else None


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


class UnifiedToApp(FakeProviderApp):
    name = "unified_to"
    stream_paths = {"users": "/student", "courses": "/course", "course_enrollments": "/activity"}

    def __init__(self, data: Dataset, api_token: str = API_TOKEN, connection_id: str = CONNECTION_ID,
                 updated_gte: bool = True, course_filter: bool = True, content_rows_name_course: bool = True, **options: Any) -> None:
        super().__init__(data, **options)
        self.content_rows_name_course = content_rows_name_course
        self.api_token = api_token
        self.connection_id = connection_id
        self.updated_gte = updated_gte
        self.course_filter = course_filter

    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "unified_to", "base_url": base_url, "api_token": self.api_token, "connection_id": self.connection_id}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {**self.config(base_url), "api_token": "eyJhbGciOiJIUzI1NiJ9.wrong-token.c2lnbmF0dXJl"}

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        return FakeResponse(429, {"message": "Too many requests to unified.to API; max requests per minute: 600"}, headers)

    def server_error(self, status: int) -> FakeResponse:
        return FakeResponse(status, {"message": "Internal Server Error"})

    def not_found(self) -> FakeResponse:
        return FakeResponse(404, {"message": "Not Found"})

    # ---- routing --------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.headers.get("authorization") != f"Bearer {self.api_token}":
            return FakeResponse(401, {"message": "Unauthorized"})
        parts = request.path.strip("/").split("/")
        if parts[:2] == ["unified", "connection"] and len(parts) == 3:
            if parts[2] != self.connection_id:
                return FakeResponse(404, {"message": "Connection not found"})
            return FakeResponse(200, {"id": self.connection_id, "integration_type": "docebo", "integration_name": "Docebo",
                                      "categories": ["lms", "hris"], "is_paused": False, "created_at": iso(1700000000)})
        if len(parts) != 3 or parts[0] != "lms":
            return self.not_found()
        if parts[1] != self.connection_id:
            return FakeResponse(404, {"message": "Connection not found"})
        try:
            limit = int(float(request.arg("limit") or 100))
            offset = int(float(request.arg("offset") or 0))
        except ValueError:
            return FakeResponse(400, {"message": "limit and offset must be numbers"})
        if limit < 1 or offset < 0:
            return FakeResponse(400, {"message": "limit must be at least 1 and offset at least 0"})
        resource = parts[2]
        if resource == "student":
            records = [self.person(p) for p in self.data.people.values() if p.role != "instructor"]
        elif resource == "instructor":
            records = [self.person(p) for p in self.data.people.values() if p.role == "instructor"]
        elif resource == "course":
            records = [self.course(c) for c in self.data.courses.values()]
        elif resource == "content":
            records = [{"id": f"lo-{c.id}-{item}", "name": f"{c.name}, part {item + 1}", "course_ids": [str(c.id)],
                        "is_active": True, "created_at": iso(c.created), "updated_at": iso(c.created), "raw": {"lo": item}}
                       for c in self.data.courses.values() if c.id % 2 == 0 for item in range(CONTENT_ITEMS)]
        elif resource == "activity":
            records = [a for e in self.listed_enrollments() if e.role == "learner" for a in self.activities(e)]
            if self.course_filter:
                for name in ("course_id", "student_id"):
                    if request.arg(name):
                        records = [a for a in records if a[name] == request.arg(name)]
        else:
            return FakeResponse(501, {"message": f"lms_{resource} is not supported"})
        since = request.arg("updated_gte")
        if since and self.updated_gte:
            try:
                bound = _epoch(since)
            except ValueError:
                return FakeResponse(400, {"message": "updated_gte must be an ISO-8601 date"})
            records = [r for r in records if r.get("updated_at") and _epoch(r["updated_at"]) >= bound]
        return FakeResponse(200, records[offset:offset + limit])

    # ---- rendering ---------------------------------------------------------------------------------------------------
    def person(self, p: Person) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": str(p.id), "created_at": iso(p.created), "updated_at": iso(p.updated),
            "name": f"{p.first_name} {p.last_name}", "first_name": p.first_name, "last_name": p.last_name,
            "emails": [{"email": p.email, "type": "WORK"}] if p.email else [],
            "telephones": [{"telephone": f"+1555000{p.id:04d}", "type": "WORK"}] if p.id % 3 == 0 else [],
            "raw": {"user_id": p.id, "username": p.login, "status": p.status, "department": p.custom.get("department")},
        }
        if p.role == "instructor":
            record["title"] = p.job_title
        return record

    def course(self, c: Any) -> dict[str, Any]:
        instructors = [self.data.people[e.user_id] for e in self.data.enrollments_of_course(c.id) if e.role == "instructor" and e.user_id in self.data.people]
        record: dict[str, Any] = {
            "id": str(c.id), "created_at": iso(c.created), "updated_at": iso(c.updated), "name": c.name,
            "description": c.description or None, "is_active": c.status == "active",
            "languages": [c.language] if c.language else [], "categories": [c.category[1]],
            "media": [{"type": "WEB", "url": f"https://acme.docebosaas.com/learn/course/{c.id}"}],
            "instructors": [{"id": str(p.id), "name": f"{p.first_name} {p.last_name}"} for p in instructors],
            "raw": {"id_course": c.id, "code": c.code, "status": c.status, "owner": c.custom.get("owner")},
        }
        if c.duration_seconds is not None:
            record["duration_minutes"] = c.duration_seconds / 60
        return record

    def activities(self, e: Enrollment) -> list[dict[str, Any]]:
        done = e.state in ("completed", "passed", "failed")
        common = {"student_id": str(e.user_id), "course_id": str(e.course_id), "is_completed": done,
                  "progress_percentage": e.progress, "started_at": iso(e.started), "completed_at": iso(e.completed),
                  "created_at": iso(e.enrolled)}
        grade = str(e.score) if e.score is not None else None
        if e.course_id % 2:  # tracked per course: one row per learner
            return [{**common, "id": f"enr-{e.id}", "content_id": None, "updated_at": iso(e.updated),
                     "duration_minutes": e.time_spent / 60, "assigned_grade": grade, "raw": {"enrollment_id": e.id, "status": e.state}}]
        rows = []
        for item in range(CONTENT_ITEMS):
            last = item == CONTENT_ITEMS - 1
            row = {**common, "id": f"act-{e.id}-{item}", "content_id": f"lo-{e.course_id}-{item}",
                   "updated_at": iso(e.updated if last else e.enrolled), "duration_minutes": e.time_spent / 60 / CONTENT_ITEMS,
                   "assigned_grade": grade if last else None, "raw": {"learning_object": item, "enrollment_id": e.id}}
            if not self.content_rows_name_course:
                del row["course_id"]  # the course is the content item's (`GET /lms/{id}/content`, `course_ids`)
            rows.append(row)
        return rows

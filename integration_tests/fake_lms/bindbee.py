"""Fake Bindbee unified LMS API, as documented (../shared/docs/providers-unified-northpass.md §3).

- `Authorization: Bearer <API key>` (wrong → 401 `{"detail"}` with `WWW-Authenticate: Bearer`) and
  `X-Connector-Token` (missing → 422 FastAPI validation body; a token of an HRIS connector → 403; unknown → 401).
- `GET /api/lms/v1/users`, `/courses`, `/enrollments`, `/completions`: `{"cursor": "…" | null, "page_size": n,
  "items": [...]}`, paged by `page_size` (default 50, 1–200, else 422) and `cursor`.
- Records: Bindbee UUIDs as `id`, the LMS's id as `remote_id`, `modified_at` (ISO 8601 `Z`), `custom_fields` only
  with `include_custom_fields=true` (else null), `raw_data` only with `include_raw_data=true`. Relations are ids;
  `expand=user[f,…],course[…],completion` inlines them (with only the listed fields). No `modified_after` on LMS
  lists (documented for HRIS only): such a parameter is ignored, as FastAPI ignores unknown ones.
- Enrollment = assignment (learners only; instructors are listed on the course), completion = achievement.
- Rate limit: `limit` requests per `window` seconds per connector token (200 a minute by default); every answer
  carries `X-RateLimit-Limit/Remaining/Reset` (Unix seconds); a 429 adds `Retry-After` and `{"detail": ...}`.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from .dataset import Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse, cursor_page

API_KEY = "bb_live_fake_0123456789abcdef"
CONNECTOR_TOKEN = "ct_lms_fake_fedcba9876543210"
HRIS_CONNECTOR_TOKEN = "ct_hris_fake_0000000000000000"
_KINDS = {"user": 1, "course": 2, "enrollment": 3, "completion": 4, "category": 5}
_LOCALES = {"en": "en_US", "el": "el_GR", "de": "de_DE", "fr": "fr_FR", "es": "es_ES"}
_EXPAND = re.compile(r"([a-z_]+)(?:\[([a-z_,]+)\])?")


def bindbee_id(kind: str, number: int | str) -> str:
    """A deterministic UUIDv7-looking id per record kind (Bindbee ids are UUIDs, unrelated to the LMS's ids)."""
    return f"018b18ef-{_KINDS[kind]:04x}-7000-8000-{int(number):012x}"


def iso(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None


def iso_duration(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs or not (hours or minutes) else "")


def validation_error(loc: list[Any], msg: str, kind: str, value: Any = None) -> FakeResponse:
    return FakeResponse(422, {"detail": [{"loc": loc, "msg": msg, "type": kind, "input": value}]})


class BindbeeApp(FakeProviderApp):
    name = "bindbee"
    stream_paths = {"users": "/api/lms/v1/users", "courses": "/api/lms/v1/courses", "course_enrollments": "/api/lms/v1/enrollments"}

    def __init__(self, data: Dataset, api_key: str = API_KEY, connector_token: str = CONNECTOR_TOKEN,
                 limit: int = 200, window: float = 60.0, **options: Any) -> None:
        super().__init__(data, **options)
        self.api_key = api_key
        self.connector_token = connector_token
        self.limit = int(limit)
        self.window = float(window)
        self._windows: dict[str, tuple[float, int]] = {}  # connector token -> (window start, requests in it)

    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "bindbee", "base_url": base_url, "api_token": self.api_key, "connector_token": self.connector_token}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {**self.config(base_url), "api_token": "bb_live_wrong_" + self.api_key[-12:]}

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        wait = int(retry_after if retry_after is not None else self.window)
        return FakeResponse(429, {"detail": "Rate limit exceeded"}, {
            "Retry-After": str(wait), "X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time()) + wait)})

    def server_error(self, status: int) -> FakeResponse:
        return FakeResponse(status, {"detail": "Internal Server Error"})

    def not_found(self) -> FakeResponse:
        return FakeResponse(404, {"detail": "Not Found"})

    # ---- what Bindbee lists ---------------------------------------------------------------------------------------
    def listed_enrollments(self) -> list[Enrollment]:
        return [e for e in super().listed_enrollments() if e.role == "learner"]

    def user_record_id(self, person: Person) -> str:
        return bindbee_id("user", person.id)

    def course_record_id(self, course: Course) -> str:
        return bindbee_id("course", course.id)

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return bindbee_id("enrollment", enrollment.id)

    # ---- routing --------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return FakeResponse(401, {"detail": "Invalid or missing API key"}, {"WWW-Authenticate": "Bearer"})
        token = request.headers.get("x-connector-token")
        if not token:
            return validation_error(["header", "x-connector-token"], "Field required", "missing")
        if token == HRIS_CONNECTOR_TOKEN:
            return FakeResponse(403, {"detail": "This connector token does not have access to the lms API category"})
        if token != self.connector_token:
            return FakeResponse(401, {"detail": "Invalid connector token"})
        headers, allowed = self._count(token)
        if not allowed:
            response = self.rate_limited(max(1, math.ceil(float(headers["X-RateLimit-Reset"]) - time.time())))
            response.headers.update(headers)
            return response
        response = self._route(request)
        response.headers.update(headers)
        return response

    def _count(self, token: str) -> tuple[dict[str, str], bool]:
        now = time.time()
        start, count = self._windows.get(token, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        count += 1
        self._windows[token] = (start, count)
        reset = start + self.window
        return ({"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(max(0, self.limit - count)),
                 "X-RateLimit-Reset": str(math.ceil(reset))}, count <= self.limit)

    def _route(self, request: FakeRequest) -> FakeResponse:
        if not request.path.startswith("/api/lms/v1/"):
            return self.not_found()
        resource = request.path[len("/api/lms/v1/"):].strip("/")
        try:
            page_size = int(request.arg("page_size") or 50)
        except ValueError:
            return validation_error(["query", "page_size"], "Input should be a valid integer", "int_parsing", request.arg("page_size"))
        if not 1 <= page_size <= 200:
            return validation_error(["query", "page_size"], "Input should be less than or equal to 200" if page_size > 200
                                    else "Input should be greater than or equal to 1", "less_than_equal", page_size)
        options = {"raw": request.arg("include_raw_data") == "true", "custom": request.arg("include_custom_fields") == "true"}
        expand = {name: (fields.split(",") if fields else None) for name, fields in _EXPAND.findall(request.arg("expand") or "")}
        if resource == "users":
            records = [self.user(p, options) for p in self.data.people.values()]
        elif resource == "courses":
            records = [self.course(c, options) for c in self.data.courses.values()]
        elif resource == "enrollments":
            unknown = set(expand) - {"user", "course", "completion"}
            if unknown:
                return FakeResponse(400, {"detail": f"Invalid expand relation(s): {','.join(sorted(unknown))}"})
            records = [self.enrollment(e, options, expand) for e in self.listed_enrollments()]
        elif resource == "completions":
            records = [self.completion(e, options) for e in self.listed_enrollments() if self.completed(e)]
        else:
            return self.not_found()
        try:
            page, cursor = cursor_page(records, request.arg("cursor"), page_size)
        except (ValueError, KeyError):
            return FakeResponse(400, {"detail": "Invalid cursor"})
        return FakeResponse(200, {"cursor": cursor, "page_size": len(page), "items": page})

    # ---- rendering ---------------------------------------------------------------------------------------------------
    @staticmethod
    def common(kind: str, number: int, remote_id: str, modified: int, custom: dict[str, Any], raw: dict[str, Any], options: dict[str, bool]) -> dict[str, Any]:
        record = {"id": bindbee_id(kind, number), "remote_id": remote_id, "modified_at": iso(modified),
                  "custom_fields": custom if options["custom"] else None}
        if options["raw"]:
            record["raw_data"] = raw
        return record

    def user(self, p: Person, options: dict[str, bool]) -> dict[str, Any]:
        status = {"active": "ACTIVE", "inactive": "INACTIVE"}.get(p.status, p.status.upper())  # other values pass through
        return {
            **self.common("user", p.id, str(p.id), p.updated, {"department": p.custom.get("department")},
                          {"id": p.id, "login": p.login, "email": p.email}, options),
            "first_name": p.first_name, "middle_name": "Maria" if p.id % 5 == 0 else None, "last_name": p.last_name,
            "email_address": p.email, "phone_number": None, "status": status,
        }

    def course(self, c: Course, options: dict[str, bool]) -> dict[str, Any]:
        instructors = [bindbee_id("user", e.user_id) for e in self.data.enrollments_of_course(c.id) if e.role == "instructor"]
        return {
            **self.common("course", c.id, f"crs-{c.id}", c.updated, {"owner": c.custom.get("owner")},
                          {"id": c.id, "name": c.name, "code": c.code}, options),
            "name": c.name, "description": c.description or None, "cover_image": None if c.id % 2 else f"https://lms.example.com/img/{c.id}.png",
            "url": f"https://lms.example.com/course/{c.id}", "duration": iso_duration(c.duration_seconds),
            "languages": [_LOCALES[c.language]] if c.language else [],
            "categories": [bindbee_id("category", c.category[0])], "contents": [], "skills": [], "instructors": instructors,
            "status": {"active": "ACTIVE", "inactive": "INACTIVE", "draft": "PENDING"}[c.status],
        }

    @staticmethod
    def completed(e: Enrollment) -> bool:
        return e.state in ("completed", "passed", "failed") and e.completed is not None

    def completion(self, e: Enrollment, options: dict[str, bool]) -> dict[str, Any]:
        grade = {"passed": "PASS", "failed": "FAIL"}.get(e.state, "B" if e.id % 2 else None)
        return {
            **self.common("completion", e.id, f"cmp-{e.id}", e.completed, {}, {"id": e.id, "state": e.state}, options),
            "user": bindbee_id("user", e.user_id), "course": bindbee_id("course", e.course_id), "content": None,
            "score": int(e.score) if e.score is not None else None, "grade": grade,
            "started_at": iso(e.started), "completed_at": iso(e.completed), "time_duration": iso_duration(e.time_spent),
        }

    def enrollment(self, e: Enrollment, options: dict[str, bool], expand: dict[str, list[str] | None]) -> dict[str, Any]:
        person, course = self.data.people[e.user_id], self.data.courses[e.course_id]
        user: Any = bindbee_id("user", person.id)
        course_ref: Any = bindbee_id("course", course.id)
        completion: Any = bindbee_id("completion", e.id) if self.completed(e) else None
        if "user" in expand:
            user = _only(self.user(person, {"raw": False, "custom": False}), expand["user"])
        if "course" in expand:
            course_ref = _only(self.course(course, {"raw": False, "custom": False}), expand["course"])
        if "completion" in expand and completion is not None:
            completion = _only(self.completion(e, {"raw": False, "custom": False}), expand["completion"])
        # Bindbee rewrites the enrollment (new modified_at) whenever any of its fields, its completion included, changes.
        return {
            **self.common("enrollment", e.id, f"{e.user_id}-{e.course_id}", e.updated, {}, {"user_id": e.user_id, "course_id": e.course_id}, options),
            "user": user, "course": course_ref, "start_date": iso(e.started), "completion": completion,
        }


def _only(record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key in fields} if fields else record

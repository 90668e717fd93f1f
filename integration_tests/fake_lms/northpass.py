"""Fake Northpass API v2, as documented (../shared/docs/providers-unified-northpass.md §1; docs/providers/northpass.md).

- Auth: `X-Api-Key: <key>` (the v2 reference also shows `?api_key=`, accepted too). A missing or wrong key answers
  401 with a JSON:API error document (the status is not documented; 401 is assumed).
- `GET /v2/people`, `/v2/courses`, `/v2/courses/{uuid}/enrollments` (lists), `/v2/people/{uuid}`, `/v2/courses/{uuid}`.
- JSON:API envelopes: `data[]` of `{type, id, attributes, relationships, links}` and a top-level `links` with
  `self`, `prev` (left out on page 1) and `next` (left out on the last page). Links point at the host that was asked.
- Paging by `page` (1-based; absent, 0 or garbage read as 1) and `limit` (default 25, at most 100: both
  undocumented assumptions). As in the documented example, links carry `page` only (`links_keep_limit=True`
  adds `limit`). A page past the end is an empty `data` without `next`.
- Rate limit: more than `rate_limit_per_second` (10) requests within any second answer 429 with a JSON:API error
  and no `Retry-After` (none is documented).
- Ids are UUIDs; timestamps `2020-03-31T17:15:17Z`. Deleted people are not listed; withdrawn enrollments are gone;
  instructors are course `instructor_partnerships`, never enrollment rows.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from typing import Any, Callable
from urllib.parse import urlencode

from .dataset import Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse

API_KEY = "npFAKE-northpass-api-key-for-tests-only"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
_NAMESPACE = uuid.UUID("6d168614-6ec9-46ba-9001-99091d4a2005")
SCHOOL_ID = str(uuid.uuid5(_NAMESPACE, "school"))
_COURSE_STATUS = {"active": "live", "inactive": "archived", "draft": "draft"}


def uuid_of(kind: str, number: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{number}"))


def iso(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None


def jsonapi_error(status: int, title: str, detail: str | None = None) -> FakeResponse:
    error = {"status": str(status), "title": title}
    if detail:
        error["detail"] = detail
    return FakeResponse(status, {"errors": [error]}, content_type="application/vnd.api+json")


class NorthpassApp(FakeProviderApp):
    name = "northpass"
    stream_paths = {"users": "/v2/people", "courses": "/v2/courses", "course_enrollments": "/enrollments"}

    def __init__(self, data: Dataset, api_key: str = API_KEY, rate_limit_per_second: int | str | None = 10,
                 links_keep_limit: bool | str = False, **options: Any) -> None:
        super().__init__(data, **options)
        self.api_key = api_key
        self.rate_limit = int(rate_limit_per_second) if rate_limit_per_second not in (None, "", "0", 0) else None
        self.links_keep_limit = links_keep_limit in (True, "1", "true", "True")
        self.rate_limited_count = 0  # 429s served by the limiter itself (not injected faults)
        self._recent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._course_index: tuple[int, dict[str, Course]] | None = None

    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "northpass", "base_url": base_url, "api_key": self.api_key}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "northpass", "base_url": base_url, "api_key": "npWRONG" + self.api_key[7:]}

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        # Northpass documents no Retry-After, so an injected 429 has none either, whatever the fault asks.
        return jsonapi_error(429, "Too Many Requests", "You are allowed 10 requests/second.")

    def server_error(self, status: int) -> FakeResponse:
        return jsonapi_error(status, "Internal Server Error")

    def not_found(self) -> FakeResponse:
        return jsonapi_error(404, "Not Found", "The record could not be found.")

    # ---- what v2 lists ---------------------------------------------------------------------------------------------
    def listed_people(self) -> list[Person]:
        return [p for p in self.data.people.values() if p.status != "deleted"]

    def listed_enrollments(self) -> list[Enrollment]:
        return [e for e in super().listed_enrollments() if e.role == "learner" and e.state != "withdrawn"]

    def user_record_id(self, person: Person) -> str:
        return uuid_of("person", person.id)

    def course_record_id(self, course: Course) -> str:
        return uuid_of("course", course.id)

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return f"{uuid_of('person', enrollment.user_id)}:{uuid_of('course', enrollment.course_id)}"

    # ---- routing ---------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        key = request.headers.get("x-api-key") or request.arg("api_key")
        if key != self.api_key:
            return jsonapi_error(401, "Unauthorized", "Invalid or missing API key.")
        if self._over_rate_limit():
            return self.rate_limited(None)
        parts = request.path.strip("/").split("/")
        if request.method != "GET" or len(parts) < 2 or parts[0] != "v2":
            return jsonapi_error(404, "Not Found", "No route matches.")
        resource, rest = parts[1], parts[2:]
        if resource == "people" and not rest:
            return self.page(request, self.listed_people(), lambda p: self.person(p, request))
        if resource == "people" and len(rest) == 1:
            person = self._people_by_uuid().get(rest[0])
            return FakeResponse(200, {"data": self.person(person, request)}) if person else self.not_found()
        if resource == "courses" and not rest:
            return self.page(request, list(self.data.courses.values()), lambda c: self.course(c, request))
        course = self._courses_by_uuid().get(rest[0]) if resource == "courses" and rest else None
        if resource == "courses" and len(rest) == 1:
            return FakeResponse(200, {"data": self.course(course, request)}) if course else self.not_found()
        if resource == "courses" and len(rest) == 2 and rest[1] == "enrollments":
            if course is None:
                return self.not_found()
            listed = {p.id for p in self.listed_people()}
            rows = [e for e in self.data.enrollments_of_course(course.id)
                    if e.user_id in listed and e.role == "learner" and e.state != "withdrawn"]
            return self.page(request, rows, self.enrollment)
        return jsonapi_error(404, "Not Found", "No route matches.")

    def _over_rate_limit(self) -> bool:
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                self.rate_limited_count += 1
                return True
            self._recent.append(now)
            return False

    def _people_by_uuid(self) -> dict[str, Person]:
        return {uuid_of("person", p.id): p for p in self.listed_people()}

    def _courses_by_uuid(self) -> dict[str, Course]:
        # Built once per course count (a fan-out asks for every course): courses are only ever removed.
        if self._course_index is None or self._course_index[0] != len(self.data.courses):
            self._course_index = (len(self.data.courses), {uuid_of("course", c.id): c for c in self.data.courses.values()})
        return self._course_index[1]

    # ---- paging ----------------------------------------------------------------------------------------------------
    def page(self, request: FakeRequest, items: list[Any], render: Callable[[Any], dict[str, Any]]) -> FakeResponse:
        page = _positive(request.arg("page"), 1)
        limit = min(_positive(request.arg("limit"), DEFAULT_LIMIT), MAX_LIMIT)
        chunk = [render(item) for item in items[(page - 1) * limit: page * limit]]
        links = {"self": self._link(request, page, limit)}
        if page > 1:
            links["prev"] = self._link(request, page - 1, limit)
        if page * limit < len(items):
            links["next"] = self._link(request, page + 1, limit)
        return FakeResponse(200, {"data": chunk, "links": links})

    def _link(self, request: FakeRequest, page: int, limit: int) -> str:
        query: dict[str, Any] = {"page": page} if page > 1 else {}
        if self.links_keep_limit and request.arg("limit") is not None:
            query["limit"] = limit
        return f"{self._origin(request)}{request.path}" + (f"?{urlencode(query)}" if query else "")

    @staticmethod
    def _origin(request: FakeRequest) -> str:
        return f"http://{request.headers.get('host', '127.0.0.1')}"

    # ---- rendering -------------------------------------------------------------------------------------------------
    def person(self, p: Person, request: FakeRequest) -> dict[str, Any]:
        person_id = uuid_of("person", p.id)
        activated = p.last_login is not None  # never logged in: the invitation is still open
        name = f"{p.first_name} {p.last_name}"
        return {
            "type": "people",
            "id": person_id,
            "attributes": {
                "name": name, "full_name": name, "first_name": p.first_name, "last_name": p.last_name,
                "email": p.email, "sso_uid": None,
                "created_at": iso(p.created), "updated_at": iso(p.updated),
                "activated_at": iso(p.created + 3600) if activated else None,
                "disabled": p.status == "inactive", "unsubscribed": p.id % 5 == 0,
                "invite_token": None if activated else f"INVITE{p.id:06d}secret",
                "custom_avatar_url": None,
            },
            "relationships": {"school": {"data": {"type": "schools", "id": SCHOOL_ID}}, "groups": {"data": []},
                              "partnerships": {"data": []}},
            "links": {"self": {"href": f"{self._origin(request)}/v2/people/{person_id}", "methods": ["get"]},
                      "teaching": {"href": f"https://app.northpass.com/people/{person_id}", "methods": ["get"]}},
        }

    def course(self, c: Course, request: FakeRequest) -> dict[str, Any]:
        course_id = uuid_of("course", c.id)
        instructors = [e for e in self.data.enrollments_of_course(c.id) if e.role == "instructor"]
        learners = [e for e in self.data.enrollments_of_course(c.id) if e.role == "learner" and e.state != "withdrawn"]
        href = f"{self._origin(request)}/v2/courses/{course_id}"
        return {
            "type": "courses",
            "id": course_id,
            "attributes": {
                "name": c.name, "status": _COURSE_STATUS[c.status], "permalink": c.code.lower(),
                "full_description": c.description or None,
                "list_image_url": f"https://cdn.northpass.com/courses/{course_id}.png" if c.id % 3 else None,
                "enrollments_count": len(learners), "unpublished_changes": c.id % 4 == 0,
                "credential_achievement_count": sum(1 for e in learners if e.progress >= 100),
                "created_at": iso(c.created), "updated_at": iso(c.updated),
            },
            "relationships": {"instructor_partnerships": {"data": [
                {"type": "instructor_partnerships", "id": uuid_of("partnership", e.id)} for e in instructors]}},
            "links": {"self": {"href": href, "meta": {"methods": ["get"]}},
                      "enrollments": {"href": f"{href}/enrollments", "meta": {"methods": ["get"]}},
                      "edit": {"href": f"https://app.northpass.com/courses/{course_id}/edit", "meta": {"methods": ["get"]}}},
        }

    def enrollment(self, e: Enrollment) -> dict[str, Any]:
        person_id = uuid_of("person", e.user_id)
        return {
            "type": "course_enrollments",
            "id": uuid_of("enrollment", e.id),
            "attributes": {
                "person_id": person_id, "course_id": uuid_of("course", e.course_id),
                # A number: some rows as floats, as JSON decoders may give them.
                "progress": float(e.progress) if e.id % 2 else e.progress,
                "enrolled_at": iso(e.enrolled),
            },
            "relationships": {"person": {"data": {"type": "people", "id": person_id}}},
        }


def _positive(value: str | None, default: int) -> int:
    try:
        number = int(value or "")
    except ValueError:
        return default
    return number if number > 0 else default

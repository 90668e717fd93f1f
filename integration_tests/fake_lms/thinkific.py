"""Fake Thinkific Admin API v1, as documented (docs/providers/thinkific.md has the sources).

- Base path `/api/public/v1/`. Auth: `X-Auth-API-Key` and `X-Auth-Subdomain` headers, both right, or 401
  `{"error": "Authentication Error"}`.
- `GET users`, `courses`, `enrollments` (lists) and `users/{id}`, `courses/{id}`, `enrollments/{id}`; an unknown
  id answers 404 `{"error": "Record not found."}`.
- Lists: `{"items": [...], "meta": {"pagination": {current_page, next_page, prev_page, total_pages, total_items,
  entries_info}}}`, `page` 1-based (absent or garbage: 1) and `limit` (default 25; `max_limit`, 250 by default, is
  an assumption: no maximum is documented). `next_page` is null on the last page.
- `enrollments` takes `query[updated_after]` (strictly after), `query[user_id]`, `query[course_id]`; users and
  courses take no date filter. Users and courses carry no modification time (UserResponse, CourseResponse).
- Rate limit: more than `rate_limit` requests (120) within any `rate_window_seconds` (60) answer 429 with
  `RateLimit-Reset: <epoch seconds>`; more than 10 requests in flight answer 429 too. No `Retry-After`.
- Timestamps like the documented examples, `2018-07-12T23:19:00.154Z`. `percentage_completed` is a fraction 0–1.
- Deletions: a deleted user, course or enrollment is no longer listed. Withdrawn rows are deleted enrollments;
  instructors are course admins (`roles`), never enrollment rows.
"""

from __future__ import annotations

import calendar
import collections
import math
import threading
import time
from typing import Any, Callable

from .dataset import Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse

API_KEY = "thinkificFAKEa1b2c3d4e5f60718293a4b5c6d"
SUBDOMAIN = "acme-academy"
PREFIX = "/api/public/v1/"
DEFAULT_LIMIT = 25
CONCURRENT_LIMIT = 10
_ROLES = {"admin": ["site_admin"], "instructor": ["course_admin"], "manager": ["group_analyst"], "learner": []}


def iso(epoch: int | None) -> str | None:
    if not epoch:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{epoch % 1000:03d}Z"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> FakeResponse:
    return FakeResponse(status, {"error": message}, headers or {})


def _parse_time(value: str) -> float | None:
    text = value.strip().replace("Z", "").split(".")[0]
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return float(calendar.timegm(time.strptime(text, fmt)))
        except ValueError:
            continue
    return None


class ThinkificApp(FakeProviderApp):
    name = "thinkific"
    stream_paths = {"users": f"{PREFIX}users", "courses": f"{PREFIX}courses", "course_enrollments": f"{PREFIX}enrollments"}

    def __init__(self, data: Dataset, api_key: str = API_KEY, subdomain: str = SUBDOMAIN,
                 rate_limit: int | str | None = 120, rate_window_seconds: float | str = 60.0,
                 max_limit: int | str = 250, **options: Any) -> None:
        super().__init__(data, **options)
        self.api_key = api_key
        self.subdomain = subdomain
        self.rate_limit = int(rate_limit) if rate_limit not in (None, "", "0", 0) else None
        self.rate_window = float(rate_window_seconds)
        self.max_limit = int(max_limit)
        self.rate_limited_count = 0  # 429s served by the limiter itself (not injected faults)
        self.max_in_flight = 0
        self._in_flight = 0
        self._recent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "thinkific", "base_url": base_url, "api_key": self.api_key, "subdomain": self.subdomain}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {**self.config(base_url), "api_key": "thinkificWRONG" + self.api_key[14:]}

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        # Thinkific documents RateLimit-Reset (epoch seconds), not Retry-After: an injected 429 says when it ends so.
        reset = math.ceil(time.time() + (retry_after if retry_after is not None else 1))
        return error(429, "Rate limit exceeded", {"RateLimit-Reset": str(reset)})

    def server_error(self, status: int) -> FakeResponse:
        return error(status, "Internal Server Error")

    def not_found(self) -> FakeResponse:
        return error(404, "Record not found.")

    # ---- what the API lists ----------------------------------------------------------------------------------------
    def listed_people(self) -> list[Person]:
        return [p for p in self.data.people.values() if p.status != "deleted"]

    def listed_enrollments(self) -> list[Enrollment]:
        return [e for e in super().listed_enrollments() if e.role == "learner" and e.state != "withdrawn"]

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return str(enrollment.id)

    # ---- routing ---------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.headers.get("x-auth-api-key") != self.api_key or request.headers.get("x-auth-subdomain") != self.subdomain:
            return error(401, "Authentication Error")
        limited = self._over_rate_limit()
        if limited is not None:
            return limited
        try:
            return self._route(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _route(self, request: FakeRequest) -> FakeResponse:
        if request.method != "GET" or not request.path.startswith(PREFIX):
            return error(404, "Not Found")
        parts = request.path[len(PREFIX):].strip("/").split("/")
        resource, rest = parts[0], parts[1:]
        if resource == "users":
            people = self.listed_people()
            if not rest:
                return self.page(request, people, self.user)
            found = next((p for p in people if str(p.id) == rest[0]), None)
            return FakeResponse(200, self.user(found)) if found and len(rest) == 1 else self.not_found()
        if resource == "courses":
            courses = self.listed_courses()
            if not rest:
                return self.page(request, courses, self.course)
            found = next((c for c in courses if str(c.id) == rest[0]), None)
            return FakeResponse(200, self.course(found)) if found and len(rest) == 1 else self.not_found()
        if resource == "enrollments":
            rows = self.listed_enrollments()
            if rest:
                found = next((e for e in rows if str(e.id) == rest[0]), None)
                return FakeResponse(200, self.enrollment(found)) if found and len(rest) == 1 else self.not_found()
            after = request.arg("query[updated_after]")
            if after:
                bound = _parse_time(after)
                if bound is None:
                    return FakeResponse(422, {"errors": {"updated_after": ["is not a valid date"]}})
                rows = [e for e in rows if e.updated > bound]
            for field, attribute in (("query[user_id]", "user_id"), ("query[course_id]", "course_id")):
                if request.arg(field):
                    rows = [e for e in rows if str(getattr(e, attribute)) == request.arg(field)]
            return self.page(request, rows, self.enrollment)
        return error(404, "Not Found")

    def _over_rate_limit(self) -> FakeResponse | None:
        """Counts the request in flight (the caller releases it) or answers 429."""
        now = time.time()
        with self._lock:
            if self._in_flight >= CONCURRENT_LIMIT:
                self.rate_limited_count += 1
                return error(429, "Too many concurrent requests", {"RateLimit-Reset": str(math.ceil(now + 1))})
            if self.rate_limit is not None:
                while self._recent and now - self._recent[0] >= self.rate_window:
                    self._recent.popleft()
                if len(self._recent) >= self.rate_limit:
                    self.rate_limited_count += 1
                    reset = math.ceil(self._recent[0] + self.rate_window)
                    return error(429, "Rate limit exceeded", {"RateLimit-Reset": str(reset)})
                self._recent.append(now)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        return None

    # ---- paging ----------------------------------------------------------------------------------------------------
    def page(self, request: FakeRequest, items: list[Any], render: Callable[[Any], dict[str, Any]]) -> FakeResponse:
        page = _positive(request.arg("page"), 1)
        limit = min(_positive(request.arg("limit"), DEFAULT_LIMIT), self.max_limit)
        total_pages = max(1, math.ceil(len(items) / limit))
        chunk = items[(page - 1) * limit: page * limit]
        first = (page - 1) * limit + 1
        return FakeResponse(200, {
            "items": [render(item) for item in chunk],
            "meta": {"pagination": {
                "current_page": page,
                "next_page": page + 1 if page < total_pages else None,
                "prev_page": page - 1 if page > 1 else None,
                "total_pages": total_pages,
                "total_items": len(items),
                "entries_info": f"{first}-{first + len(chunk) - 1} of {len(items)}" if chunk else f"0 of {len(items)}",
            }},
        })

    # ---- rendering -------------------------------------------------------------------------------------------------
    def user(self, p: Person) -> dict[str, Any]:
        return {
            "id": p.id,
            "created_at": iso(p.created),
            "first_name": p.first_name,
            "last_name": p.last_name,
            "full_name": f"{p.first_name} {p.last_name}",
            "company": "Acme" if p.id % 4 == 0 else None,
            "email": p.email,
            "roles": list(_ROLES.get(p.role, [])),
            "avatar_url": None,
            "bio": None,
            "headline": p.job_title,
            "affiliate_code": None,
            "external_source": None,
            "affiliate_commission": None,
            "affiliate_commission_type": "%",
            "affiliate_payout_email": None,
            "administered_course_ids": [e.course_id for e in self.data.enrollments.values()
                                        if e.user_id == p.id and e.role == "instructor"],
            "custom_profile_fields": [{"id": 1, "value": p.job_title, "label": "Job", "custom_profile_field_definition_id": 1}]
            if p.job_title else [],
        }

    def course(self, c: Course) -> dict[str, Any]:
        admins = [e.user_id for e in self.data.enrollments_of_course(c.id) if e.role == "instructor"]
        return {
            "id": c.id,
            "name": c.name,
            "slug": c.code.lower(),
            "subtitle": None,
            "product_id": 1000 + c.id,
            "description": c.description or None,
            "course_card_text": None,
            "intro_video_youtube": None,
            "contact_information": None,
            "keywords": c.category[1].lower(),
            "duration": None,
            "banner_image_url": None,
            "course_card_image_url": f"https://import.cdn.thinkific.com/{c.id}/card.jpg" if c.id % 3 else None,
            "intro_video_wistia_identifier": None,
            "administrator_user_ids": admins,
            "chapter_ids": [c.id * 10 + n for n in range(1, 4)],
            "reviews_enabled": c.id % 2 == 0,
            "user_id": admins[0] if admins else 1,
            "instructor_id": 500 + c.id,
        }

    def enrollment(self, e: Enrollment) -> dict[str, Any]:
        person, course = self.data.people[e.user_id], self.data.courses[e.course_id]
        completed = e.state in ("completed", "passed") or e.progress >= 100
        free_trial = e.state == "assigned"  # enrolled without activation: preview access only
        expiry = e.expires or (e.enrolled + 90 * 86400 if e.state == "expired" else None)
        return {
            "id": e.id,
            "user_email": person.email,
            "user_name": f"{person.first_name} {person.last_name}",
            "user_id": e.user_id,
            "course_name": course.name,
            "course_id": e.course_id,
            "percentage_completed": 1.0 if completed else round(e.progress / 100, 4),
            "expired": e.state == "expired",
            "is_free_trial": free_trial,
            "completed": completed,
            "started_at": iso(e.started),
            "activated_at": None if free_trial else iso(e.enrolled),
            "completed_at": iso(e.completed or e.updated) if completed else None,
            "updated_at": iso(e.updated),
            "expiry_date": iso(expiry),
        }


def _positive(value: str | None, default: int) -> int:
    try:
        number = int(value or "")
    except ValueError:
        return default
    return number if number > 0 else default

"""Fake TalentLMS API v1, as documented (../shared/docs/providers-talentlms-ispring-docebo.md §1).

- HTTP Basic with the API key as user name and an empty password; a wrong key answers 401 with the v1 error body.
- Arguments in the path as `name:value` pairs (`/api/v1/courses/id:12`).
- Scalars as strings; `*_timestamp` twins as strings of Unix seconds, sometimes plain integers; empty dates
  are "" with a null twin; formatted dates follow the portal's `date_format` (option), without a zone (UTC here).
- `/siteinfo`, `/ratelimit` (counts down per request), `/users`, `/courses`, `/courses/id:{id}`, `/users/id:{id}`.
  What v1 answers once the hourly quota is spent is unconfirmed (providers doc §1.10), so this fake does not
  refuse on its own; tests inject 429s with the shared fault switches.
- Deleted users are not listed (v1 drops them), nor their enrollments; a withdrawn enrollment is simply absent.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from .dataset import Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse

API_KEY = "tlmsFAKEkey0123456789abcdefghij"  # 30 characters, like a real key

_FORMATS = {"DDMMYYYY": "%d/%m/%Y, %H:%M:%S", "MMDDYYYY": "%m/%d/%Y, %H:%M:%S", "YYYYMMDD": "%Y/%m/%d, %H:%M:%S"}
_USER_TYPES = {"admin": "SuperAdmin", "instructor": "Trainer-Type", "manager": "Team-Manager", "learner": "Learner-Type"}
_LANGUAGE_NAMES = {"en": "English", "el": "Greek", "de": "German", "fr": "French", "es": "Spanish"}
_TIMEZONE_LABELS = {"Europe/Athens": "(GMT +02:00) Athens", "America/New_York": "(GMT -05:00) Eastern Time (US & Canada)",
                    "Asia/Tokyo": "(GMT +09:00) Tokyo", "UTC": "(GMT +00:00) UTC"}


def v1_error(status: int, message: str, kind: str = "invalid_request_error") -> FakeResponse:
    return FakeResponse(status, {"error": {"type": kind, "message": message}})


class TalentLmsApp(FakeProviderApp):
    name = "talentlms"
    stream_paths = {"users": "/api/v1/users", "courses": "/api/v1/courses", "course_enrollments": "/api/v1/courses/id:"}

    def __init__(self, data: Dataset, date_format: str = "DDMMYYYY", api_key: str = API_KEY, newer_portal: bool = True,
                 hourly_limit: int = 10000, reset_in: float | None = None, **options: Any) -> None:
        super().__init__(data, **options)
        self.date_format = date_format
        self.hourly_limit = int(hourly_limit)  # the plan's quota: 2,000 or 10,000 calls an hour
        self.reset_at = time.time() + float(reset_in) if reset_in is not None else None
        self.api_key = api_key
        self.newer_portal = newer_portal  # newer portals add total_time_seconds and last_accessed_unit_url
        self.calls = 0

    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "talentlms", "base_url": base_url, "api_key": self.api_key}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "talentlms", "base_url": base_url, "api_key": "wrong" + self.api_key[5:]}

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        response = v1_error(429, "You have reached the API rate limit. Please try again later.", "rate_limit_error")
        if retry_after is not None:
            response.headers["Retry-After"] = str(int(retry_after))
        return response

    def server_error(self, status: int) -> FakeResponse:
        return v1_error(status, "Internal server error", "api_error")

    def not_found(self) -> FakeResponse:
        return v1_error(404, "The requested course does not exist")

    # ---- what v1 lists: no deleted users, and a withdrawn enrollment is gone --------------------------------------
    def listed_people(self) -> list[Person]:
        return [p for p in self.data.people.values() if p.status != "deleted"]

    def listed_enrollments(self) -> list[Enrollment]:
        return [e for e in super().listed_enrollments() if e.state != "withdrawn"]

    # ---- routing --------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        expected = "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode()
        if request.headers.get("authorization") != expected:
            return v1_error(401, "Invalid API key provided")
        self.calls += 1
        if not request.path.startswith("/api/v1/"):
            return FakeResponse(404, "<html><body>Not found</body></html>", content_type="text/html")
        action, *args = request.path[len("/api/v1/"):].strip("/").split("/")
        params = dict(arg.split(":", 1) for arg in ",".join(args).split(",") if ":" in arg)
        if action == "siteinfo":
            return FakeResponse(200, self.siteinfo())
        if action == "ratelimit":
            reset = int(self.reset_at) if self.reset_at else (int(time.time()) // 3600 + 1) * 3600
            if time.time() >= reset and self.reset_at:  # the quota window rolled over
                self.calls, self.reset_at = 0, None
            return FakeResponse(200, {"limit": str(self.hourly_limit), "remaining": max(0, self.hourly_limit - self.calls),
                                      "reset": str(reset), "formatted_reset": time.strftime("%d/%m/%Y, %H:%M", time.gmtime(reset))})
        if action == "users" and not params:
            return FakeResponse(200, [self.user(p) for p in self.listed_people()])
        if action == "users":
            person = self.data.people.get(_int(params.get("id")))
            if person is None or person.status == "deleted":
                return v1_error(404, "The requested user does not exist")
            return FakeResponse(200, self.user_detail(person))
        if action == "courses" and not params:
            return FakeResponse(200, [self.course(c) for c in self.data.courses.values()])
        if action == "courses":
            course = self.data.courses.get(_int(params.get("id")))
            if course is None:
                return v1_error(404, "The requested course does not exist")
            return FakeResponse(200, self.course_detail(course))
        return v1_error(404, "The requested API action does not exist")

    # ---- rendering ----------------------------------------------------------------------------------------------------
    def formatted(self, epoch: int | None) -> str:
        return time.strftime(_FORMATS[self.date_format], time.gmtime(epoch)) if epoch else ""

    @staticmethod
    def twin(epoch: int | None, as_int: bool) -> Any:
        if not epoch:
            return None
        return epoch if as_int else str(epoch)

    def siteinfo(self) -> dict[str, Any]:
        return {"total_users": str(len(self.listed_people())), "total_courses": str(len(self.data.courses)),
                "total_categories": "4", "total_groups": "0", "total_branches": "0", "monthly_active_users": "12",
                "signup_method": "manual", "paypal_email": "", "domain_map": "", "date_format": self.date_format}

    def user(self, p: Person) -> dict[str, Any]:
        return {
            "id": str(p.id), "login": p.login, "first_name": p.first_name, "last_name": p.last_name,
            "email": p.email or "", "restrict_email": "0", "user_type": _USER_TYPES[p.role],
            "timezone": _TIMEZONE_LABELS.get(p.timezone or "", ""), "language": _LANGUAGE_NAMES.get(p.language or "", "English"),
            "status": "active" if p.status == "active" else "inactive", "deactivation_date": "",
            "level": "1", "points": str(p.id * 10),
            "created_on": self.formatted(p.created), "last_updated": self.formatted(p.updated),
            "last_updated_timestamp": self.twin(p.updated, as_int=p.id % 2 == 1),
            "avatar": f"https://acme.talentlms.com/pages/images/avatar_{p.id}.png", "bio": "",
            "login_key": f"https://acme.talentlms.com/index/autologin/key:SECRETLOGIN{p.id:06d}",
            "custom_field_1": p.custom.get("department", ""),
        }

    def user_detail(self, p: Person) -> dict[str, Any]:
        courses = []
        for e in self.listed_enrollments():
            if e.user_id == p.id:
                course = self.data.courses[e.course_id]
                row = self.enrollment_row(e)
                row.pop("name")
                courses.append({"id": str(course.id), "name": course.name, **row,
                                "completion_status": "completed" if e.completed else ("incomplete" if e.progress else "not_attempted")})
        return {**self.user(p), "courses": courses, "branches": [], "groups": [], "certifications": [], "badges": []}

    def course(self, c: Course) -> dict[str, Any]:
        return {
            "id": str(c.id), "name": c.name, "code": c.code, "category_id": c.category[0], "description": c.description,
            "price": "&#36;0.00", "status": "active" if c.status == "active" else "inactive",
            "creation_date": self.formatted(c.created), "last_update_on": self.formatted(c.updated), "creator_id": "1",
            "hide_from_catalog": "0", "time_limit": "0", "start_datetime": None, "expiration_datetime": None,
            "level": "1", "shared": "1" if c.id % 2 else "0",
            "shared_url": f"https://acme.talentlms.com/shared/start/key:SHARE{c.id}" if c.id % 2 else "",
            "avatar": f"https://acme.talentlms.com/pages/images/course_{c.id}.png", "big_avatar": "",
            "certification": "", "certification_duration": "", "custom_field_1": c.custom.get("owner", ""),
        }

    def enrollment_row(self, e: Enrollment) -> dict[str, Any]:
        person = self.data.people[e.user_id]
        done = e.completed if e.state in ("completed", "passed", "failed") else None
        as_int = e.id % 2 == 1
        row = {
            "id": str(e.user_id), "name": f"{person.first_name[0]}. {person.last_name}", "role": e.role,
            "enrolled_on": self.formatted(e.enrolled), "enrolled_on_timestamp": self.twin(e.enrolled, as_int),
            "completed_on": self.formatted(done), "completed_on_timestamp": self.twin(done, as_int),
            "completion_percentage": str(e.progress),
            "expired_on": self.formatted(e.expires), "expired_on_timestamp": self.twin(e.expires, as_int),
            "total_time": _human_duration(e.time_spent) if e.time_spent else None,
        }
        if self.newer_portal:
            row["total_time_seconds"] = e.time_spent
            if e.started:
                row["last_accessed_unit_url"] = f"https://acme.talentlms.com/unit/view/id:{e.course_id}{e.id}"
        return row

    def course_detail(self, c: Course) -> dict[str, Any]:
        listed = {p.id for p in self.listed_people()}
        rows = [self.enrollment_row(e) for e in self.data.enrollments_of_course(c.id)
                if e.user_id in listed and e.state != "withdrawn"]
        return {**self.course(c), "users": rows, "units": [{"id": str(c.id * 10), "type": "SCORM | xAPI | cmi5", "name": "Intro", "url": ""}],
                "rules": ["All units must be completed"], "prerequisites": []}


def _human_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    if minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return -1

"""Fake Docebo v1 REST API, as documented (../shared/docs/providers-talentlms-ispring-docebo.md §3).

- `POST /oauth2/token` (form): `client_credentials` or `password` grant with `scope=api`; RFC 6749 errors
  (`invalid_client` 400, `invalid_grant` 401, `invalid_scope` 400); tokens expire after `token_ttl` seconds.
- Bearer tokens on every API call; a missing, unknown or expired one answers 401.
- `GET /manage/v1/user`, `/learn/v1/courses`, `/learn/v1/enrollments` in the `{"data": {"items", "count",
  "has_more_data", "current_page", "current_page_size", "total_page_count", "cursor"?}, "version", "_links"}`
  envelope; `page` is 1-based, `page_size` at most 200 (more is a 400).
- Sorting: users by `sort_attr`/`sort_dir`, courses by `sort_by`/`sort_by_direction`. Without a sort, rows come in an
  order that changes from request to request, as the pagination-loop reports describe; enrollments come in their
  storage order, and `get_cursor=1` returns a `cursor` that pins the search (filters) for the next pages.
- `updated_from` (`YYYY-MM-DD HH:MM:SS`, inclusive) filters courses and enrollments; users document no such filter.
- Dates `YYYY-MM-DD HH:MM:SS` in UTC; unset ones are `0000-00-00 00:00:00`, "" or null, as the API mixes them.
- Deleted users are gone, with their enrollments. Learning plans are not courses: their enrollment rows have
  `type: learning_plan` and the plan's id.
"""

from __future__ import annotations

import calendar
import random
import time
from collections import Counter
from typing import Any

from .dataset import Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse

CLIENT_ID = "lms-enrollments-connector"
CLIENT_SECRET = "FAKE-docebo-client-secret-for-tests-only"
USERNAME = "superadmin"
PASSWORD = "dcbFAKEpassword!42"
MAX_PAGE_SIZE = 200
ZERO_DATE = "0000-00-00 00:00:00"

_LEVELS = {"admin": "godadmin", "manager": "poweruser", "instructor": "user", "learner": "user"}
_LANGUAGES = {"en": "english", "el": "greek", "de": "german", "fr": "french", "es": "spanish"}
_USER_SORTS = {"username": lambda p: p.login, "first_name": lambda p: (p.first_name, p.id), "user_id": lambda p: p.id}
_COURSE_SORTS = {"id_course": lambda c: c.id, "name": lambda c: (c.name, c.id), "last_update": lambda c: c.updated}


def docebo_time(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) if epoch else None


def api_error(status: int, message: str) -> FakeResponse:
    # Docebo's API error body is not documented; this is the framework's shape (providers doc §3.9).
    return FakeResponse(status, {"name": {400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(status, "Error"),
                                 "message": message, "code": 0, "status": status})


def oauth_error(status: int, error: str, description: str) -> FakeResponse:
    return FakeResponse(status, {"error": error, "error_description": description})


class DoceboApp(FakeProviderApp):
    name = "docebo"
    stream_paths = {"users": "/manage/v1/user", "courses": "/learn/v1/courses", "course_enrollments": "/learn/v1/enrollments"}

    def __init__(self, data: Dataset, token_ttl: float = 3600, grant: str = "client_credentials",
                 revoke_after: int | None = None, **options: Any) -> None:
        super().__init__(data, **options)
        self.token_ttl = float(token_ttl)
        self.grant = grant  # which grant config() uses
        self.revoke_after = int(revoke_after) if revoke_after else None  # invalidate each token after N API calls
        self.tokens: dict[str, dict[str, Any]] = {}
        self.grants: list[str] = []  # grant_type of every token issued, in order
        self.served: Counter[str] = Counter()  # items served per path
        self.cursors: dict[str, dict[str, Any]] = {}
        self._calls = 0

    def config(self, base_url: str) -> dict[str, Any]:
        provider = {"provider_type": "docebo", "base_url": base_url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        if self.grant == "password":
            provider.update(username=USERNAME, password=PASSWORD)
        return provider

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {**self.config(base_url), "client_secret": "wrong" + CLIENT_SECRET[5:]}

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        response = api_error(429, "Too many requests: the API call limit for this platform was exceeded.")
        if retry_after is not None:
            response.headers["Retry-After"] = str(int(retry_after))
        return response

    def server_error(self, status: int) -> FakeResponse:
        return api_error(status, "Service temporarily unavailable" if status == 503 else "Internal server error")

    # ---- what Docebo lists ----------------------------------------------------------------------------------------
    def listed_people(self) -> list[Person]:
        return [p for p in self.data.people.values() if p.status != "deleted"]

    def listed_courses(self) -> list[Course]:
        return [c for c in self.data.courses.values() if c.kind == "course"]

    def learning_plans(self) -> list[Course]:
        return [c for c in self.data.courses.values() if c.kind == "path"]

    # ---- routing --------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.path == "/oauth2/token":
            return self.token(request) if request.method == "POST" else api_error(404, "Not found")
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        if request.path == "/manage/v1/user":
            return self.listing(request, self.users(request))
        if request.path == "/learn/v1/courses":
            return self.listing(request, self.courses(request))
        if request.path == "/learn/v1/enrollments":
            return self.listing(request, self.enrollments(request))
        return api_error(404, "Page not found.")

    def token(self, request: FakeRequest) -> FakeResponse:
        form = request.form()
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return oauth_error(400, "invalid_client", "The client credentials are invalid")
        grant = form.get("grant_type")
        if grant not in ("client_credentials", "password"):
            return oauth_error(400, "unsupported_grant_type", f'Grant type "{grant}" not supported')
        if form.get("scope") != "api":
            return oauth_error(400, "invalid_scope", "An unsupported scope was requested")
        if grant == "password" and (form.get("username") != USERNAME or form.get("password") != PASSWORD):
            return oauth_error(401, "invalid_grant", "Invalid username and password combination")
        token = f"dcbtok{len(self.grants) + 1:04d}{random.Random(len(self.grants)).getrandbits(64):016x}"
        self.tokens[token] = {"expires": time.time() + self.token_ttl, "calls": 0}
        self.grants.append(grant)
        body = {"access_token": token, "expires_in": int(self.token_ttl), "token_type": "Bearer", "scope": "api"}
        if grant == "password":
            body["refresh_token"] = "r" + token
        return FakeResponse(200, body)

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        header = request.headers.get("authorization", "")
        token = self.tokens.get(header[len("Bearer "):]) if header.startswith("Bearer ") else None
        if token is None:
            return api_error(401, "Your request was made with invalid credentials.")
        if time.time() >= token["expires"]:
            return api_error(401, "The access token provided has expired.")
        token["calls"] += 1
        if self.revoke_after and token["calls"] > self.revoke_after:
            return api_error(401, "The access token provided has expired.")
        return None

    # ---- the list envelope -------------------------------------------------------------------------------------------
    def listing(self, request: FakeRequest, rows: list[dict[str, Any]]) -> FakeResponse:
        try:
            page = int(request.arg("page", "1"))
            size = int(request.arg("page_size", "20"))
        except ValueError:
            return api_error(400, "page and page_size must be integers")
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            return api_error(400, f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}")
        if request.arg("cursor") and request.arg("cursor") not in self.cursors:
            return api_error(400, "Invalid cursor")
        self._calls += 1
        pages = max(1, -(-len(rows) // size))
        items = rows[(page - 1) * size: page * size]
        self.served[request.path] += len(items)
        data: dict[str, Any] = {"items": items, "count": len(items), "has_more_data": page < pages, "current_page": page,
                                "current_page_size": size, "total_page_count": pages, "total_count": len(rows)}
        if request.arg("get_cursor") == "1" or request.arg("cursor"):
            data["cursor"] = request.arg("cursor") or self.new_cursor(request)
        return FakeResponse(200, {"data": data, "version": "1.0.0", "_links": {"self": {"href": request.path}}})

    def new_cursor(self, request: FakeRequest) -> str:
        cursor = f"c{len(self.cursors) + 1:06d}"
        self.cursors[cursor] = {"updated_from": request.arg("updated_from")}
        return cursor

    def pinned(self, request: FakeRequest, name: str) -> str | None:
        """A search parameter, as pinned by the cursor when one is passed (an unknown cursor is a 400 in listing)."""
        cursor = request.arg("cursor")
        if cursor:
            return self.cursors.get(cursor, {}).get(name)
        return request.arg(name)

    def _unstable(self, rows: list[Any]) -> list[Any]:
        # No sort asked: the database's order, which differs between requests.
        shuffled = list(rows)
        random.Random(self._calls).shuffle(shuffled)
        return shuffled

    @staticmethod
    def _updated_from(value: str | None) -> int | None:
        return calendar.timegm(time.strptime(value, "%Y-%m-%d %H:%M:%S")) if value else None

    # ---- collections -------------------------------------------------------------------------------------------------
    def users(self, request: FakeRequest) -> list[dict[str, Any]]:
        people = self.listed_people()
        key = _USER_SORTS.get(request.arg("sort_attr") or "")
        if key is None:
            people = self._unstable(people)
        else:  # sort_dir defaults to desc
            people = sorted(people, key=key, reverse=request.arg("sort_dir", "desc") != "asc")
        return [self.user(p) for p in people]

    def courses(self, request: FakeRequest) -> list[dict[str, Any]]:
        since = self._updated_from(request.arg("updated_from"))
        courses = [c for c in self.listed_courses() if since is None or c.updated >= since]
        key = _COURSE_SORTS.get(request.arg("sort_by") or "")
        direction = request.arg("sort_by_direction")
        if key is None or direction not in ("asc", "desc"):  # sort_by is ignored without a valid direction
            courses = self._unstable(courses)
        else:
            courses = sorted(courses, key=key, reverse=direction == "desc")
        return [self.course(c) for c in courses]

    def enrollments(self, request: FakeRequest) -> list[dict[str, Any]]:
        since = self._updated_from(self.pinned(request, "updated_from"))
        people = {p.id for p in self.listed_people()}
        courses = {c.id for c in self.listed_courses()}
        plans = {c.id for c in self.learning_plans()}
        rows = []
        for e in sorted(self.data.enrollments.values(), key=lambda e: (e.user_id, e.course_id)):
            if e.user_id not in people or (e.course_id not in courses and e.course_id not in plans):
                continue
            if since is not None and e.updated < since:
                continue
            rows.append(self.enrollment(e, learning_plan=e.course_id in plans))
        return rows

    # ---- rendering ------------------------------------------------------------------------------------------------------
    def user(self, p: Person) -> dict[str, Any]:
        expired = p.status == "inactive" and p.id % 2 == 0  # some inactive users are expired rather than suspended
        return {
            "user_id": str(p.id), "username": p.login, "first_name": p.first_name, "last_name": p.last_name,
            "fullname": f"{p.first_name} {p.last_name}", "email": p.email or "", "uuid": f"0000-{p.id:08d}",
            "status": "1" if p.status == "active" or expired else "0", "level": _LEVELS[p.role],
            "expired": expired, "expiration_date": "2024-06-30" if expired else None,
            "creation_date": docebo_time(p.created), "last_update": docebo_time(p.updated),
            "last_access_date": docebo_time(p.last_login) or ZERO_DATE,
            "language": _LANGUAGES.get(p.language or "", "english"), "lang_code": p.language or "en",
            "timezone": p.timezone or "", "date_format": "", "avatar": "", "email_validation_status": "1",
            "is_manager": p.role == "manager", "field_12": p.custom.get("department", ""),
        }

    def course(self, c: Course) -> dict[str, Any]:
        course_type = ["elearning", "classroom", "webinar"][c.id % 3]
        return {
            "id_course": c.id, "name": c.name, "uidCourse": f"U{c.id:06d}", "description": c.description,
            "date_last_updated": docebo_time(c.updated), "course_type": course_type, "selling": False,
            "code": c.code, "slug_name": c.name.lower().replace(" ", "-"), "image": "",
            "img_url": f"https://cdn.example.org/course-{c.id}.png" if c.id % 2 else "",
            "duration": c.duration_seconds or 0, "language": _LANGUAGES.get(c.language or "", "english"),
            "lang_code": c.language or "", "price": "", "is_new": False, "is_opened": True,
            "category": {"id": int(c.category[0]), "name": c.category[1]},
            "start_date": ZERO_DATE, "end_date": ZERO_DATE, "enrollment_policy": 1, "max_attempts": 0,
        }

    def enrollment(self, e: Enrollment, learning_plan: bool = False) -> dict[str, Any]:
        course = self.data.courses[e.course_id]
        status = {"not_started": "subscribed", "in_progress": "in_progress", "completed": "completed",
                  "passed": "completed", "failed": "completed", "withdrawn": "suspended",
                  "assigned": "waiting" if e.id % 2 else "to_confirm"}.get(e.state)
        if e.state == "expired":
            status = "in_progress" if e.progress else "subscribed"
        done = e.completed if e.state in ("completed", "passed", "failed") else None
        return {
            "id": e.course_id, "user_id": e.user_id, "name": course.name, "code": course.code,
            "description": course.description, "slug_name": course.name.lower().replace(" ", "-"),
            "image_url": "", "lang_code": course.language or "",
            "type": "learning_plan" if learning_plan else ["elearning", "classroom", "webinar"][course.id % 3],
            "status": status, "score": e.score if e.score is not None else 0,
            "level": "instructor" if e.role == "instructor" else "learner",
            "enroll_begin_date": docebo_time(e.enrolled), "enroll_end_date": docebo_time(e.expires) or ZERO_DATE,
            "course_complete_date": docebo_time(done) or "", "date_last_updated": docebo_time(e.updated),
            "total_time": e.time_spent, "duration": course.duration_seconds or 0,
            "url": f"https://acme.docebosaas.com/learn/course/{course.id}/{course.name.lower().replace(' ', '-')}",
            "is_new": e.progress == 0, "can_enter": True, "soft_deadline": False, "rating": 0,
        }

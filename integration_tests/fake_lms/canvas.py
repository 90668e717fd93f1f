"""Fake Canvas LMS REST API v1, as documented (../shared/docs/providers-moodle-canvas.md §2) and as canvas-lms's source does.

- `Authorization: Bearer {token}` (or `?access_token=`). No token: 401 "user authorization required"; a wrong one:
  401 "Invalid access token."; a non-admin's token on account endpoints: 401 "user not authorized to perform that
  action" (Canvas uses 401, not 403, for permissions). Bodies are `{"errors": [{"message": ...}]}`.
- Paging: `per_page` (default 10) clamped to 1..`max_per_page` (100); a `Link` header of absolute URLs carrying every
  other parameter (`current`, `next`, `prev`, `first`, `last`); enrollments page with opaque bookmarks and no `last`,
  users without `last` either (Canvas leaves it out when counting is expensive).
- Throttling: a leaky bucket per token (high-water mark, outflow per second, cost per request). Every answer carries
  `X-Request-Cost` and `X-Rate-Limit-Remaining`; a full bucket answers `throttle_status` (option): 403, `text/plain`,
  "403 Forbidden (Rate Limit Exceeded)" as Canvas did until October 2025 (request_throttle.rb), or 429 "429 Too Many
  Requests (Rate Limit Exceeded)" as it does since; `X-Rate-Limit-Remaining` <= 0, no `Retry-After`. The
  `rate_limit` fault answers the same, its bucket `throttle_overdraw` (option) units over the mark.
- `admins_status` (option, 401 or 403): `/admins` refuses the admin token with that status, as Canvas does for a
  sub-account admin or a role that may not view the account's admins; everything else still answers.
- Data: the root account (`root_account_id`, alias `self`) holds every course; sub-account `root + 1` holds the courses
  whose id is a multiple of 3. Deleted users are not listed, and their enrollments are `deleted`. Canvas
  soft-deletes: a course or enrollment `Dataset.delete` removed is still listed when asked for by state (courses
  `state[]=deleted` or `all`, enrollments `state[]=deleted`) with workflow_state / enrollment_state `deleted` and, for
  an enrollment, `updated_at` = the deletion time; the default states leave them out. Instructor rows
  become Teacher/TA/Designer enrollments; some courses also have an observer. Enrollment states by default leave out
  concluded ("completed") ones, as Canvas does.
- The paths Singer's tap-canvas reads are served too (terms, sections, assignments, submissions, outcome results);
  it hard-codes account 1, so run the fake with `--option root_account_id=1` for it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from typing import Any, Callable
from urllib.parse import urlencode

from .dataset import Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse

ACCESS_TOKEN = "7~FAKEcanvasTOKENx9aQ2mVb7LkP0sD3fG5hJ8kZ1nC4vB6wE9rT2yU5iO8pA"  # Canvas tokens: "{shard}~{64 chars}"
STUDENT_TOKEN = "7~FAKEstudentTOKENq1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c2v3"  # a valid token of a non-admin

THROTTLED_REASONS = {403: "Forbidden", 429: "Too Many Requests"}
_NEUTRAL_TO_STATE = {"not_started": "active", "in_progress": "active", "completed": "active", "passed": "active",
                     "failed": "active", "expired": "completed", "withdrawn": "inactive"}
_INSTRUCTOR_TYPES = ("TeacherEnrollment", "TaEnrollment", "DesignerEnrollment")  # by course id % 3
_BASE_TYPES = {"student": "StudentEnrollment", "teacher": "TeacherEnrollment", "ta": "TaEnrollment",
               "designer": "DesignerEnrollment", "observer": "ObserverEnrollment"}
_DEFAULT_ENROLLMENT_STATES = ("active", "invited", "creation_pending", "inactive")  # an admin's all_active_or_pending
OBSERVER_ID_BASE = 900000
REQUIREMENTS_PER_COURSE = 5


def iso(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None


def canvas_error(status: int, message: str, **extra: Any) -> FakeResponse:
    return FakeResponse(status, {"errors": [{"message": message}], **extra})


class CanvasApp(FakeProviderApp):
    name = "canvas"

    def __init__(self, data: Dataset, access_token: str = ACCESS_TOKEN, root_account_id: int | str = 10,
                 max_per_page: int | str = 100, hwm: float | str = 600.0, outflow: float | str = 10.0,
                 request_cost: float | str = 0.05, throttle_status: int | str = 403, throttle_overdraw: float | str = 0.0,
                 admins_status: int | str | None = None, **options: Any) -> None:
        super().__init__(data, **options)
        self.access_token = access_token
        self.root_account_id = int(root_account_id)
        self.sub_account_id = self.root_account_id + 1
        self.max_per_page = int(max_per_page)
        self.hwm, self.outflow, self.request_cost = float(hwm), float(outflow), float(request_cost)
        self.throttle_status = int(throttle_status)
        if self.throttle_status not in THROTTLED_REASONS:
            raise ValueError(f"throttle_status must be one of {sorted(THROTTLED_REASONS)}")
        self.throttle_overdraw = float(throttle_overdraw)
        self.admins_status = int(admins_status) if admins_status not in (None, "") else None
        self._bucket_level = 0.0
        self._bucket_touched = time.monotonic()
        self._bucket_lock = threading.Lock()
        self.throttled = 0  # throttled answers (403 or 429) given because the bucket was full
        self.stream_paths = {"users": f"/api/v1/accounts/{self.root_account_id}/users",
                             "courses": f"/api/v1/accounts/{self.root_account_id}/courses", "course_enrollments": "/enrollments"}
        self._routes: list[tuple[re.Pattern[str], Callable[..., FakeResponse]]] = [
            (re.compile(pattern), handler) for pattern, handler in (
                (r"users/self", self.current_user),
                (r"accounts", self.accounts),
                (r"accounts/(\w+)", self.account),
                (r"accounts/(\w+)/users", self.account_users),
                (r"accounts/(\w+)/admins", self.account_admins),
                (r"accounts/(\w+)/courses", self.account_courses),
                (r"accounts/(\w+)/terms", self.account_terms),
                (r"courses/(\d+)", self.single_course),
                (r"courses/(\d+)/enrollments", self.course_enrollments),
                (r"courses/(\d+)/bulk_user_progress", self.bulk_user_progress),
                (r"courses/(\d+)/sections", self.course_sections),
                (r"courses/(\d+)/assignments", self.course_assignments),
                (r"courses/(\d+)/students/submissions", self.course_submissions),
                (r"courses/(\d+)/outcome_results", self.outcome_results),
            )
        ]

    # ---- configs ------------------------------------------------------------------------------------------------
    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "canvas", "base_url": base_url, "access_token": self.access_token}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "canvas", "base_url": base_url, "access_token": self.access_token[:-6] + "XXXXXX"}

    # ---- fault answers, as Canvas gives them --------------------------------------------------------------------
    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        # Canvas sends no Retry-After, whatever the fault asked for.
        return self.throttled_answer(-self.throttle_overdraw)

    def throttled_answer(self, remaining: float) -> FakeResponse:
        status = self.throttle_status
        body = f"{status} {THROTTLED_REASONS[status]} (Rate Limit Exceeded)\n"
        return FakeResponse(status, body, {"X-Rate-Limit-Remaining": f"{remaining if remaining < 0 else 0.0:.1f}"}, "text/plain; charset=utf-8")

    def server_error(self, status: int) -> FakeResponse:
        return canvas_error(status, "An error occurred.", error_report_id=4242)

    def not_found(self) -> FakeResponse:
        return canvas_error(404, "The specified resource does not exist.")

    # ---- what the API lists --------------------------------------------------------------------------------------
    def listed_people(self) -> list[Person]:
        return [p for p in self.data.people.values() if p.status != "deleted"]

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return str(enrollment.id)

    def course_account(self, course: Course) -> int:
        return self.sub_account_id if course.id % 3 == 0 else self.root_account_id

    def has_requirements(self, course_id: int) -> bool:
        """Courses whose id is a multiple of 4 have no module requirements: no progress to measure."""
        return course_id % 4 != 0

    def enrollment_type(self, e: Enrollment) -> str:
        return "StudentEnrollment" if e.role == "learner" else _INSTRUCTOR_TYPES[e.course_id % 3]

    def enrollment_state(self, e: Enrollment) -> str:
        if self.data.people[e.user_id].status == "deleted":
            return "deleted"  # deleting a user deletes their enrollments
        if e.state == "assigned":
            return "invited" if e.id % 2 else "creation_pending"
        return _NEUTRAL_TO_STATE[e.state]

    def observer_rows(self, course: Course) -> list[dict[str, Any]]:
        """An observer in every fourth course (not in the neutral dataset: observers watch, they do not learn)."""
        if course.id % 4 or not self.data.people:
            return []
        observer_id = (course.id * 3) % len(self.data.people) + 1
        observed = next((e.user_id for e in self.data.enrollments_of_course(course.id) if e.role == "learner"), None)
        if self.data.people[observer_id].status == "deleted" or observed is None:
            return []
        return [{"id": OBSERVER_ID_BASE + course.id, "user_id": observer_id, "type": "ObserverEnrollment", "observed": observed}]

    def courses_of(self, account: int) -> list[Course]:
        courses = sorted(self.data.courses.values(), key=lambda c: c.id)
        return courses if account == self.root_account_id else [c for c in courses if self.course_account(c) == account]

    def people_of(self, account: int) -> list[Person]:
        people = sorted(self.listed_people(), key=lambda p: p.id)
        if account == self.root_account_id:
            return people
        enrolled = {e.user_id for c in self.courses_of(account) for e in self.data.enrollments_of_course(c.id)}
        return [p for p in people if p.id in enrolled]

    def base_types_of(self, account: int) -> dict[int, set[str]]:
        """user id -> the enrollment types they hold (not deleted) in the account's courses."""
        held: dict[int, set[str]] = {}
        for course in self.courses_of(account):
            for e in self.data.enrollments_of_course(course.id):
                if self.enrollment_state(e) != "deleted":
                    held.setdefault(e.user_id, set()).add(self.enrollment_type(e))
            for row in self.observer_rows(course):
                held.setdefault(row["user_id"], set()).add("ObserverEnrollment")
        return held

    def admins_of(self, account: int) -> list[Person]:
        """The root's admins are `admin` people; a sub-account's are `manager` people."""
        wanted = "admin" if account == self.root_account_id else "manager"
        return [p for p in self.listed_people() if p.role == wanted]

    # ---- throttle ---------------------------------------------------------------------------------------------------
    def _spend(self) -> tuple[bool, float]:
        """Leak the bucket, then admit the request (adding its cost) unless the bucket is past its high-water mark."""
        with self._bucket_lock:
            now = time.monotonic()
            self._bucket_level = max(0.0, self._bucket_level - self.outflow * (now - self._bucket_touched))
            self._bucket_touched = now
            if self._bucket_level >= self.hwm:
                self.throttled += 1
                return False, self.hwm - self._bucket_level
            self._bucket_level += self.request_cost
            return True, self.hwm - self._bucket_level

    # ---- routing ----------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        auth = request.headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else request.arg("access_token")
        if not token:
            response = canvas_error(401, "user authorization required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="canvas-lms"'
            return response
        if token not in (self.access_token, STUDENT_TOKEN):
            response = canvas_error(401, "Invalid access token.")
            response.headers["WWW-Authenticate"] = 'Bearer realm="canvas-lms"'
            return response
        admitted, remaining = self._spend()
        if not admitted:
            return self.throttled_answer(remaining)
        response = self.route(request, is_admin=token == self.access_token)
        response.headers.update({"X-Request-Cost": f"{self.request_cost:.4f}", "X-Rate-Limit-Remaining": f"{remaining:.1f}"})
        return response

    def route(self, request: FakeRequest, is_admin: bool) -> FakeResponse:
        if request.method != "GET" or not request.path.startswith("/api/v1/"):
            return self.not_found()
        rest = request.path[len("/api/v1/"):].strip("/")
        for pattern, handler in self._routes:
            match = pattern.fullmatch(rest)
            if match:
                args = list(match.groups())
                if rest.startswith("accounts/"):
                    account = self._account_id(args[0])
                    if account is None:
                        return self.not_found()
                    if not is_admin:
                        return FakeResponse(401, {"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]})
                    args[0] = account
                elif rest.startswith("courses/"):
                    if int(args[0]) not in self.data.courses:
                        return self.not_found()
                    if not is_admin:
                        return FakeResponse(401, {"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]})
                    args[0] = int(args[0])
                return handler(request, *args)
        return self.not_found()

    def _account_id(self, raw: str) -> int | None:
        account = self.root_account_id if raw == "self" else int(raw) if raw.isdigit() else None
        return account if account in (self.root_account_id, self.sub_account_id) else None

    # ---- paging -------------------------------------------------------------------------------------------------------
    def per_page(self, request: FakeRequest) -> int:
        try:
            requested = int(request.arg("per_page") or 10)
        except ValueError:
            requested = 10
        return min(max(requested, 1), self.max_per_page)  # Canvas clamps, it does not refuse

    def _link_base(self, request: FakeRequest) -> str:
        kept = [(k, v) for k, values in request.query.items() if k not in ("page", "per_page", "access_token") for v in values]
        query = urlencode(kept)
        return f"http://{request.headers.get('host', '127.0.0.1')}{request.path}?{query + '&' if query else ''}"

    def paged(self, request: FakeRequest, items: list[Any], render: Callable[[Any], Any], with_last: bool = True) -> FakeResponse:
        """Numbered pages: `page=N&per_page=M` links, as Api.paginate builds them."""
        size = self.per_page(request)
        try:
            page = max(int(request.arg("page") or 1), 1)
        except ValueError:
            return canvas_error(400, "invalid page")
        chunk = items[(page - 1) * size: page * size]
        last = max((len(items) + size - 1) // size, 1)
        base = self._link_base(request)
        rels = {"current": page, "first": 1}
        if page < last:
            rels["next"] = page + 1
        if page > 1:
            rels["prev"] = page - 1
        if with_last:
            rels["last"] = last
        return self._with_links([render(item) for item in chunk], base, size, rels)

    def bookmarked(self, request: FakeRequest, items: list[Any], key: Callable[[Any], int], render: Callable[[Any], Any]) -> FakeResponse:
        """Bookmark pages (`page=bookmark:…`, opaque): the next page starts after the last key seen; no `last` link."""
        size = self.per_page(request)
        raw = request.arg("page") or "first"
        after = None
        if raw.startswith("bookmark:"):
            try:
                after = json.loads(base64.urlsafe_b64decode(raw[len("bookmark:"):].encode()))[0]
            except (ValueError, IndexError, TypeError):
                return canvas_error(400, "invalid bookmark")
        ordered = sorted(items, key=key)
        rest = [item for item in ordered if after is None or key(item) > after]
        chunk = rest[:size]
        base = self._link_base(request)
        rels: dict[str, Any] = {"current": raw, "first": "first"}
        if len(rest) > size:
            rels["next"] = "bookmark:" + base64.urlsafe_b64encode(json.dumps([key(chunk[-1])]).encode()).decode()
        return self._with_links([render(item) for item in chunk], base, size, rels)

    @staticmethod
    def _with_links(body: Any, base: str, size: int, rels: dict[str, Any]) -> FakeResponse:
        links = ",".join(f'<{base}page={value}&per_page={size}>; rel="{rel}"' for rel, value in rels.items())
        return FakeResponse(200, body, {"Link": links})

    # ---- endpoints ----------------------------------------------------------------------------------------------------
    def current_user(self, request: FakeRequest) -> FakeResponse:
        person = self.listed_people()[0]
        return FakeResponse(200, {**self.user_json(person, set()), "avatar_url": None, "permissions": {}})

    def accounts(self, request: FakeRequest) -> FakeResponse:
        return self.paged(request, [self.root_account_id, self.sub_account_id], self.account_json)

    def account(self, request: FakeRequest, account: int) -> FakeResponse:
        return FakeResponse(200, self.account_json(account))

    def account_json(self, account: int) -> dict[str, Any]:
        is_root = account == self.root_account_id
        return {"id": account, "name": "Acme University" if is_root else "Engineering", "workflow_state": "active",
                "parent_account_id": None if is_root else self.root_account_id,
                "root_account_id": None if is_root else self.root_account_id,
                "uuid": f"acct{account:08d}uuid", "default_time_zone": "America/Denver"}

    def account_users(self, request: FakeRequest, account: int) -> FakeResponse:
        people = self.people_of(account)
        base_type = request.arg("enrollment_type")
        if base_type:
            wanted = _BASE_TYPES.get(base_type)
            if wanted is None:
                return canvas_error(400, f"Invalid enrollment_type: {base_type}")
            held = self.base_types_of(account)
            people = [p for p in people if wanted in held.get(p.id, set())]
        includes = set(request.query.get("include[]", []))
        return self.paged(request, people, lambda p: self.user_json(p, includes), with_last=False)

    def user_json(self, p: Person, includes: set[str]) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": p.id, "name": f"{p.first_name} {p.last_name}", "created_at": iso(p.created),
            "sortable_name": f"{p.last_name}, {p.first_name}", "short_name": p.first_name,
            "first_name": p.first_name, "last_name": p.last_name,
            "sis_user_id": f"SIS{p.id:05d}" if p.id % 3 else None, "integration_id": None, "login_id": p.login,
        }
        if p.id % 2:
            user["locale"] = p.language  # only users who picked a language have one
        if "email" in includes:
            user["email"] = p.email
        if "last_login" in includes:
            user["last_login"] = iso(p.last_login)
        if "time_zone" in includes:
            user["time_zone"] = p.timezone or "America/Denver"  # the account's default zone
        if "avatar_url" in includes:
            user["avatar_url"] = f"https://canvas.example.edu/images/thumbnails/{p.id}/avatar"
        return user

    def account_admins(self, request: FakeRequest, account: int) -> FakeResponse:
        if self.admins_status is not None:
            return FakeResponse(self.admins_status, {"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]})
        def render(p: Person) -> dict[str, Any]:
            return {"id": 5000 + p.id, "role": "AccountAdmin", "role_id": 1, "workflow_state": "active",
                    "user": {"id": p.id, "name": f"{p.first_name} {p.last_name}", "sortable_name": f"{p.last_name}, {p.first_name}",
                             "short_name": p.first_name, "login_id": p.login}}
        return self.paged(request, self.admins_of(account), render)

    def account_courses(self, request: FakeRequest, account: int) -> FakeResponse:
        states = set(request.query.get("state[]", [])) or {"created", "claimed", "available", "completed", "unpublished"}
        if "all" in states:
            states |= {"created", "claimed", "available", "completed", "unpublished", "deleted"}
        includes = set(request.query.get("include[]", []))
        courses = [c for c in self.courses_of(account) if self.course_state(c) in states]
        if "deleted" in states:  # soft-deleted courses, listed only when asked for
            gone = sorted((c for c, _ in self.data.deleted.get("courses", {}).values()), key=lambda c: c.id)
            courses += [c for c in gone if account == self.root_account_id or self.course_account(c) == account]
        return self.paged(request, courses, lambda c: self.course_json(c, includes))

    @staticmethod
    def course_state(c: Course) -> str:
        return {"active": "available", "inactive": "completed", "draft": "unpublished"}[c.status]

    def course_json(self, c: Course, includes: set[str]) -> dict[str, Any]:
        course: dict[str, Any] = {
            "id": c.id, "name": c.name, "account_id": self.course_account(c), "uuid": f"crs{c.id:08d}uuid",
            "start_at": iso(c.created + 7 * 86400), "end_at": iso(c.updated) if c.status == "inactive" else None,
            "grading_standard_id": None, "is_public": False, "created_at": iso(c.created), "course_code": c.code,
            "default_view": "modules", "root_account_id": self.root_account_id, "enrollment_term_id": 1,
            "license": "private", "public_syllabus": False, "storage_quota_mb": 500, "is_public_to_auth_users": False,
            "apply_assignment_group_weights": False, "calendar": {"ics": f"https://canvas.example.edu/feeds/calendars/course_{c.id}.ics"},
            "time_zone": "America/Denver", "blueprint": False, "sis_course_id": f"SIS-{c.code}", "integration_id": None,
            "hide_final_grades": False, "workflow_state": "deleted" if c.id not in self.data.courses else self.course_state(c),
            "restrict_enrollments_to_course_dates": False,
        }
        if c.id % 2:
            course["locale"] = c.language  # only courses with a language set have one
        if "public_description" in includes:
            course["public_description"] = c.description or None
        return course

    def single_course(self, request: FakeRequest, course_id: int) -> FakeResponse:
        return FakeResponse(200, self.course_json(self.data.courses[course_id], set(request.query.get("include[]", []))))

    def account_terms(self, request: FakeRequest, account: int) -> FakeResponse:
        term = {"id": 1, "name": "Default Term", "start_at": None, "end_at": None, "created_at": "2024-01-01T00:00:00Z",
                "workflow_state": "active", "grading_period_group_id": None, "sis_term_id": None}
        page = self.paged(request, [term], lambda t: t)
        page.body = {"enrollment_terms": page.body}
        return page

    def enrollment_rows(self, course: Course) -> list[dict[str, Any]]:
        """Every enrollment row of a course (all types and states, deleted ones too), as plain facts; rendered per request."""
        rows = []
        for e in self.data.enrollments_of_course(course.id):
            rows.append({"id": e.id, "user_id": e.user_id, "type": self.enrollment_type(e), "state": self.enrollment_state(e), "e": e})
        for e, when in self.data.deleted.get("enrollments", {}).values():
            if e.course_id == course.id:  # soft-deleted: listed with state[]=deleted only
                rows.append({"id": e.id, "user_id": e.user_id, "type": self.enrollment_type(e), "state": "deleted", "e": e, "deleted_at": when})
        for row in self.observer_rows(course):
            rows.append({**row, "state": "active", "e": None})
        return rows

    def course_enrollments(self, request: FakeRequest, course_id: int) -> FakeResponse:
        course = self.data.courses[course_id]
        types = set(request.query.get("type[]", []))
        states = set(request.query.get("state[]", [])) or set(_DEFAULT_ENROLLMENT_STATES)
        user_id = request.arg("user_id")
        rows = [r for r in self.enrollment_rows(course)
                if (not types or r["type"] in types) and r["state"] in states and (user_id is None or str(r["user_id"]) == user_id)]
        host = request.headers.get("host", "127.0.0.1")
        return self.bookmarked(request, rows, key=lambda r: r["id"], render=lambda r: self.enrollment_json(course, r, host))

    def person_of(self, user_id: int) -> Person:
        """A user, deleted ones included (Canvas keeps a deleted user's record)."""
        person = self.data.people.get(user_id)
        return person if person is not None else self.data.deleted["users"][user_id][0]

    def enrollment_json(self, course: Course, row: dict[str, Any], host: str) -> dict[str, Any]:
        person = self.person_of(row["user_id"])
        e: Enrollment | None = row["e"]
        is_student = row["type"] == "StudentEnrollment"
        custom_role = is_student and e is not None and e.id % 7 == 0  # a custom student role keeps the base type
        body: dict[str, Any] = {
            "id": row["id"], "course_id": course.id, "sis_course_id": f"SIS-{course.code}", "course_integration_id": None,
            "course_section_id": course.id * 10 + 1, "section_integration_id": None, "sis_account_id": None,
            "sis_section_id": None, "sis_user_id": f"SIS{person.id:05d}" if person.id % 3 else None,
            "enrollment_state": row["state"], "limit_privileges_to_course_section": False, "sis_import_id": None,
            "root_account_id": self.root_account_id, "type": row["type"], "user_id": person.id,
            "associated_user_id": row.get("observed"),
            "role": "Auditor" if custom_role else row["type"], "role_id": 21 if custom_role else 3,
            "created_at": iso(e.enrolled if e else course.created), "updated_at": iso(row.get("deleted_at") or (e.updated if e else course.created)),
            "start_at": None, "end_at": iso(e.expires) if e is not None and e.state == "expired" else None,
            "last_activity_at": iso(e.last_activity) if e else None, "last_attended_at": None,
            "total_activity_time": e.time_spent if e else 0,
            "html_url": f"http://{host}/courses/{course.id}/users/{person.id}",
            "user": {"id": person.id, "name": f"{person.first_name} {person.last_name}",
                     "sortable_name": f"{person.last_name}, {person.first_name}", "short_name": person.first_name,
                     "login_id": person.login},
        }
        if is_student and e is not None:
            score = e.score
            body["grades"] = {
                "html_url": f"http://{host}/courses/{course.id}/grades/{person.id}",
                "current_score": score, "current_grade": None, "final_score": round(score * 0.9, 1) if score is not None else 0.0,
                "final_grade": None, "unposted_current_score": score, "unposted_final_score": round(score * 0.9, 1) if score is not None else 0.0,
            }
        return body

    def progress_of(self, e: Enrollment) -> dict[str, Any]:
        total = REQUIREMENTS_PER_COURSE if self.has_requirements(e.course_id) else 0
        done = e.progress * total // 100
        finished = total and e.state in ("completed", "passed", "failed") and e.completed
        return {"requirement_count": total, "requirement_completed_count": done,
                "next_requirement_url": None if finished or not total else f"https://canvas.example.edu/courses/{e.course_id}/modules/items/{e.id}",
                "completed_at": iso(e.completed) if finished else None}

    def bulk_user_progress(self, request: FakeRequest, course_id: int) -> FakeResponse:
        course = self.data.courses[course_id]
        host = request.headers.get("host", "127.0.0.1")
        students = {}
        for row in self.enrollment_rows(course):
            if row["type"] == "StudentEnrollment" and row["state"] != "deleted" and row["e"] is not None:
                students.setdefault(row["user_id"], row["e"])

        def render(item: tuple[int, Enrollment]) -> dict[str, Any]:
            user_id, e = item
            person = self.data.people[user_id]
            return {"id": user_id, "display_name": f"{person.first_name} {person.last_name}",
                    "avatar_image_url": f"http://{host}/images/messages/avatar-50.png",
                    "html_url": f"http://{host}/courses/{course_id}/users/{user_id}", "pronouns": None,
                    "progress": self.progress_of(e)}
        return self.paged(request, sorted(students.items()), render)

    def course_sections(self, request: FakeRequest, course_id: int) -> FakeResponse:
        course = self.data.courses[course_id]
        section = {"id": course.id * 10 + 1, "name": course.name, "course_id": course.id, "sis_section_id": None,
                   "integration_id": None, "start_at": None, "end_at": None, "restrict_enrollments_to_section_dates": None,
                   "nonxlist_course_id": None, "created_at": iso(course.created)}
        return self.paged(request, [section], lambda s: s)

    def course_assignments(self, request: FakeRequest, course_id: int) -> FakeResponse:
        course = self.data.courses[course_id]
        items = [{"id": course.id * 100 + n, "name": f"{course.name}: task {n}", "course_id": course.id, "points_possible": 10.0,
                  "due_at": None, "created_at": iso(course.created), "updated_at": iso(course.updated), "published": True,
                  "submission_types": ["online_upload"], "position": n, "assignment_group_id": course.id,
                  "html_url": f"https://canvas.example.edu/courses/{course.id}/assignments/{course.id * 100 + n}"} for n in (1, 2)]
        return self.paged(request, items, lambda a: a)

    def course_submissions(self, request: FakeRequest, course_id: int) -> FakeResponse:
        # Without student_ids[], Canvas answers the caller's own submissions: an admin has none.
        return self.paged(request, [], lambda s: s)

    def outcome_results(self, request: FakeRequest, course_id: int) -> FakeResponse:
        page = self.paged(request, [], lambda r: r)
        page.body = {"outcome_results": [], "linked": {"outcomes": [], "alignments": []}}
        return page

"""Fake Go1 REST API (version 2025-01-01), as its reference documents it (docs/providers/go1.md has the sources).

- `POST /oauth/token` (form: grant_type=client_credentials, client_id, client_secret) answers
  `{access_token, token_type: "Bearer", expires_in}`; the real token host is auth.go1.com, here the same host
  (the connector's `token_url` points at it). Tokens last `token_ttl` seconds (option; 43,200 = 12 h documented,
  short in tests); an unknown or expired token answers 401.
- Every API call must carry `Api-Version: 2025-01-01`; the fake refuses anything else with 400 (the real API picks
  a version by that header; what it does without one is not documented).
- Errors: `{"ref", "error_code", "message"}`.
- `GET /user-accounts` (not in the 2025-01-01 reference; the shape of Airbyte's community connector, which reads it
  with `Api-Version: 2022-07-01`, the version this fake demands there): `limit` 1-50, `offset`, `{total, hits}`,
  each hit an account (`id`, `account_guid`, `portal_id`, `roles` [{guid, role}], `status` boolean, `locale`,
  `created_time`, `updated_time`, `logged_in_time`) with the person under `user` (`given_name`, `family_name`,
  `username`, `email`, `updated_time`, …). A deleted account is gone, with its enrollments.
- `GET /enrollments`: `limit` 1-50 (default 20) and `offset`; `offset + limit` past 10,000 results answers 400
  (option `offset_results_limit` lowers that ceiling so that small data reaches it); `update_time_gte` /
  `update_time_lte` (ISO 8601 UTC), `sort` (created_time default, updated_time, …) and `order` (desc default).
  Answers `{total, hits}`; only parent enrollments, learners' only (Go1 has no teaching rows); a withdrawn
  enrollment is deleted in Go1, so absent. Statuses `not-started`, `in-progress`, `completed`, with `pass`.
- `GET /learning-objects`: `collection`, `state[]` (default published; draft and published together, retired and
  removed each alone), `updated_time[min]`, `include[]`, `limit` ≤ 50, or ≤ 5,000 with `use_scroll=true`, which
  answers a `next_scroll_id` to send back as `scroll_id` (an unknown one answers 400). Inactive dataset courses
  are `retired`; paths are `playlist`s. Besides the courses, each course has a `module` that is not standalone
  (not enrollable on its own, so not a unified course).
- Deletions: a deleted user, course or enrollment is gone from every list (Go1 signals deletions by webhooks only).
- Rate limit: not documented; the shared fault switches answer 429 with this API's error body.
"""

from __future__ import annotations

import base64
import calendar
import json
import secrets
import time
from typing import Any

from .dataset import Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse

CLIENT_ID = "go1-client-7Hq2xR"
CLIENT_SECRET = "go1-secret-Yb8Lw3Zt9Kp0Vd5Q"  # a made-up value of the documented kind
API_VERSION = "2025-01-01"
USER_ACCOUNTS_VERSION = "2022-07-01"  # the version /user-accounts is known to answer under
_ENROLLMENT_STATUS = {"not_started": "not-started", "assigned": "not-started", "in_progress": "in-progress",
                      "expired": "in-progress", "completed": "completed", "passed": "completed", "failed": "completed"}
_SORTABLE = {"created_time", "updated_time", "due_date", "assign_date"}
ADMIN_ID = 1  # the dataset's administrator assigns every assigned enrollment


def iso(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch)) if epoch else None


def parse_time(value: str) -> float:
    text = value.strip().replace("Z", "+00:00")
    if len(text) == 10:
        text += "T00:00:00+00:00"
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


class Go1App(FakeProviderApp):
    name = "go1"
    stream_paths = {"users": "/user-accounts", "courses": "/learning-objects", "course_enrollments": "/enrollments"}

    def __init__(self, data: Dataset, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET, token_ttl: Any = 43200,
                 offset_results_limit: Any = 10_000, **options: Any) -> None:
        super().__init__(data, **options)
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl = float(token_ttl)
        self.offset_results_limit = int(offset_results_limit)
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.calls: list[tuple[str, dict[str, list[str]]]] = []  # (path, query) of every authorised API call
        self._scrolls: dict[str, dict[str, Any]] = {}

    # ---- the connector's config ---------------------------------------------------------------------------------
    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "go1", "base_url": base_url, "token_url": f"{base_url}/oauth/token",
                "client_id": self.client_id, "client_secret": self.client_secret}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {**self.config(base_url), "client_secret": "wrong-" + self.client_secret}

    # ---- what the API lists ---------------------------------------------------------------------------------------
    def listed_enrollments(self) -> list[Enrollment]:
        courses = set(self.data.courses)
        people = {p.id for p in self.listed_people()}
        return [e for e in self.data.enrollments.values()
                if e.role == "learner" and e.state != "withdrawn" and e.course_id in courses and e.user_id in people]

    def listed_people(self) -> list[Person]:
        # A deleted account is gone from /user-accounts (with its enrollments); a deactivated one has status false.
        return [p for p in self.data.people.values() if p.status != "deleted"]

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return str(9000 + enrollment.id)

    # ---- errors -----------------------------------------------------------------------------------------------------
    @staticmethod
    def error(status: int, code: str, message: str) -> FakeResponse:
        return FakeResponse(status, {"ref": secrets.token_hex(4), "error_code": code, "message": message})

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        response = self.error(429, "too_many_requests", "Too many requests.")  # status and body not documented
        if retry_after is not None:
            response.headers["Retry-After"] = str(int(retry_after))
        return response

    def server_error(self, status: int) -> FakeResponse:
        return self.error(status, "server_error", "Server error")

    def not_found(self) -> FakeResponse:
        return self.error(404, "not_found", "Not found.")

    # ---- requests ---------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.method == "POST" and request.path == "/oauth/token":
            return self.token(request)
        if request.method != "GET":
            return self.error(405, "method_not_allowed", "Method not allowed.")
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        expiry = self.tokens.get(token)
        if expiry is None or expiry < time.monotonic():
            return self.error(401, "unauthenticated", "User is unauthenticated.")
        version = USER_ACCOUNTS_VERSION if request.path == "/user-accounts" else API_VERSION
        if request.headers.get("api-version") != version:
            return self.error(400, "invalid_version", f"Api-Version must be a supported version, e.g. {version}.")
        self.calls.append((request.path, request.query))
        if request.path == "/user-accounts":
            return self.user_accounts(request)
        if request.path == "/enrollments":
            return self.enrollments(request)
        if request.path == "/learning-objects":
            return self.learning_objects(request)
        return self.error(404, "not_found", "Not found.")

    def token(self, request: FakeRequest) -> FakeResponse:
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            return FakeResponse(400, {"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"})
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return FakeResponse(401, {"error": "invalid_client", "error_description": "Client authentication failed."})
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.token_ttl
        self.tokens_issued += 1
        return FakeResponse(200, {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl)})

    def offset_window(self, request: FakeRequest) -> tuple[int, int] | FakeResponse:
        """(limit, offset) of a list request, or Go1's 400 for values outside 1..50 and >= 0."""
        try:
            limit = int(request.arg("limit", "20"))
            offset = int(request.arg("offset", "0"))
        except ValueError:
            return self.error(400, "invalid_parameters", "Invalid parameters provided.")
        if not 1 <= limit <= 50 or offset < 0:
            return self.error(400, "invalid_parameters", "limit must be between 1 and 50.")
        return limit, offset

    # ---- /user-accounts ----------------------------------------------------------------------------------------------
    def user_accounts(self, request: FakeRequest) -> FakeResponse:
        window = self.offset_window(request)
        if isinstance(window, FakeResponse):
            return window
        limit, offset = window
        people = sorted(self.listed_people(), key=lambda p: p.id)
        return FakeResponse(200, {"total": len(people), "hits": [self.account_hit(p) for p in people[offset:offset + limit]]})

    @staticmethod
    def account_hit(p: Person) -> dict[str, Any]:
        role = {"admin": "Administrator", "manager": "Manager", "instructor": "Tutor", "learner": "Student"}[p.role]
        roles = [{"guid": f"rol_{p.id:08d}", "role": "Student"}] + ([{"guid": f"rol_{p.id:08d}b", "role": role}] if role != "Student" else [])
        return {
            "id": str(p.id),
            "account_guid": f"acc_{p.id:026d}",
            "portal_id": "2001",
            "group_ids": [],
            "managers": [],
            "roles": roles,
            "status": p.status == "active",
            "locale": p.language,
            "created_time": iso(p.created),
            "updated_time": iso(p.created),  # the account itself; the person's own changes move `user.updated_time`
            "logged_in_time": iso(p.last_login),
            "user": {
                "id": str(50000 + p.id),
                "given_name": p.first_name,
                "family_name": p.last_name,
                "username": p.login,
                "email": p.email,
                "status": p.status == "active",
                "created_time": iso(p.created),
                "updated_time": iso(p.updated),
                "user_guid": f"usr_{p.id:026d}",
            },
        }

    # ---- /enrollments -----------------------------------------------------------------------------------------------
    def enrollments(self, request: FakeRequest) -> FakeResponse:
        window = self.offset_window(request)
        if isinstance(window, FakeResponse):
            return window
        limit, offset = window
        if offset + limit > self.offset_results_limit:
            return self.error(400, "invalid_parameters", f"Using the limit and offset parameters cannot exceed {self.offset_results_limit} results.")
        sort, order = request.arg("sort", "created_time"), request.arg("order", "desc")
        if sort not in _SORTABLE or order not in ("asc", "desc"):
            return self.error(400, "invalid_parameters", "Invalid sort or order.")
        rows = [self.enrollment_hit(e) for e in self.listed_enrollments()]
        try:
            if request.arg("update_time_gte"):
                floor = parse_time(request.arg("update_time_gte"))
                rows = [r for r in rows if parse_time(r["updated_time"]) >= floor]
            if request.arg("update_time_lte"):
                ceiling = parse_time(request.arg("update_time_lte"))
                rows = [r for r in rows if parse_time(r["updated_time"]) <= ceiling]
        except ValueError:
            return self.error(400, "invalid_parameters", "Date time format is ISO 8601 in UTC.")
        rows.sort(key=lambda r: (r.get(sort) or "", int(r["id"])), reverse=order == "desc")
        return FakeResponse(200, {"total": len(rows), "hits": rows[offset:offset + limit]})

    @staticmethod
    def enrollment_hit(e: Enrollment) -> dict[str, Any]:
        status = _ENROLLMENT_STATUS[e.state]
        hit: dict[str, Any] = {
            "id": str(9000 + e.id),
            "enrollment_type": "assigned" if e.assigned else "self-directed",
            "user_account_id": str(e.user_id),
            "assigner_account_id": str(ADMIN_ID) if e.assigned else None,
            "assign_date": iso(e.enrolled) if e.assigned else None,
            "lo_id": str(e.course_id),
            "created_time": iso(e.enrolled),
            "updated_time": iso(e.updated),
            "status": status,
            "start_date": iso(e.started) if status != "not-started" else None,
            "end_date": iso(e.completed) if status == "completed" else None,
            "due_date": iso(e.due),
        }
        if status == "completed":
            hit["pass"] = e.state != "failed"
            if e.score is not None:
                hit["result"] = int(e.score)
        return hit

    # ---- /learning-objects --------------------------------------------------------------------------------------------
    def learning_objects(self, request: FakeRequest) -> FakeResponse:
        scroll = request.arg("use_scroll") == "true"
        scroll_id = request.arg("scroll_id")
        if scroll_id:
            if not scroll or scroll_id not in self._scrolls:
                return self.error(400, "invalid_request", "Invalid scroll_id.")
            cursor = self._scrolls.pop(scroll_id)
            query, offset = cursor["query"], cursor["offset"]
        else:
            query, offset = request.query, 0
        try:
            limit = int((request.query.get("limit") or query.get("limit") or ["20"])[0])
        except ValueError:
            return self.error(400, "invalid_parameters", "Occurs when invalid query parameters are provided.")
        if not 1 <= limit <= (5000 if scroll else 50):
            return self.error(400, "invalid_parameters", "limit is between 1 and 50, or 5000 with use_scroll.")
        states = query.get("state[]") or ["published"]
        if len(states) > 1 and not set(states) <= {"draft", "published"}:
            return self.error(400, "invalid_parameters", "Only draft and published states can be filtered in the same request.")
        hits = [hit for hit in self.lo_hits() if hit["lifecycle"]["state"] in states]
        minimum = (query.get("updated_time[min]") or [None])[0]
        if minimum:
            try:
                floor = parse_time(minimum)
            except ValueError:
                return self.error(400, "invalid_parameters", "updated_time[min] is ISO-8601.")
            hits = [hit for hit in hits if parse_time(hit["updated_time"]) >= floor]
        includes = set(query.get("include[]") or ["core"])
        page = [{key: value for key, value in hit.items() if key in ("id", "lo_id", "created_time", "updated_time") or key in includes}
                for hit in hits[offset:offset + limit]]
        body: dict[str, Any] = {"total": len(hits), "hits": page}
        if scroll:
            following = base64.urlsafe_b64encode(json.dumps([offset + limit, secrets.token_hex(4)]).encode()).decode()
            self._scrolls[following] = {"query": query, "offset": offset + limit}
            body["next_scroll_id"] = following  # returned on every scroll answer, the last one included
        elif offset:
            return self.error(400, "invalid_parameters", "Use offset only without scroll.")
        return FakeResponse(200, body)

    def lo_hits(self) -> list[dict[str, Any]]:
        hits = []
        for course in sorted(self.data.courses.values(), key=lambda c: c.id):
            hits.append(self.lo_hit(course))
            hits.append(self.module_hit(course))
        return hits

    @staticmethod
    def lo_hit(course: Course) -> dict[str, Any]:
        state = "retired" if course.status == "inactive" else "draft" if course.status == "draft" else "published"
        return {
            "id": f"con_{course.id:026d}",
            "lo_id": str(course.id),
            "created_time": iso(course.created).replace("+00:00", ".000Z"),
            "updated_time": iso(course.updated).replace("+00:00", ".000Z"),
            "core": {
                "type": "playlist" if course.kind == "path" else "course",
                "title": course.name,
                "description": course.description,
                "image": {"key": "image", "value": f"https://res.cloudinary.com/go1/image/{course.id}.png", "mimetype": "image/png"},
                "external_id": course.code,
                "provider_id": "9876",
                "standalone": True,
            },
            "lifecycle": {"state": state},
            "tags": {"items": [course.category[1]]},
            "topics": {"items": [{"id": int(course.category[0]), "name": course.category[1]}]},
        }

    @staticmethod
    def module_hit(course: Course) -> dict[str, Any]:
        return {
            "id": f"con_{100000 + course.id:026d}",
            "lo_id": str(100000 + course.id),
            "created_time": iso(course.created).replace("+00:00", ".000Z"),
            "updated_time": iso(course.updated).replace("+00:00", ".000Z"),
            "core": {"type": "module", "title": f"Module of {course.name}", "standalone": False},
            "lifecycle": {"state": "published"},
        }

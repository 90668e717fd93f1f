"""Fake iSpring Learn REST API v3, as documented (../shared/docs/providers-talentlms-ispring-docebo.md §2, the v3
OpenAPI, and the legacy enrollment page in ../shared/docs/seeds/002_81a865ff5c94c56f.txt).

- `POST /api/v3/token` (form: client_id, client_secret, grant_type=client_credentials) answers
  `{access_token, expires_in, token_type: "bearer"}`; tokens expire after `token_ttl` seconds (option, 1800 as
  documented; short in tests) and there is no refresh token. `advertised_ttl` (option) can announce a longer
  lifetime than the real one, as a token revoked or a clock skewed would.
- Calls need `Authorization: Bearer <token>`; a missing, unknown or expired token answers 401 with
  `ErrorResponse {code, message}`.
- XML unless `Accept: application/json`; option `xml=True` answers XML whatever is asked. XML lists are wrapped
  (`<userProfiles><userProfile>…`), so a list of one looks like a lone object; booleans are 0/1; absent values
  are empty elements; `<nextPageToken/>` is empty on the last page.
- Paging: `pageSize` (default 1000; option `max_page_size` caps it, to make small data span pages) and an opaque
  `pageToken` = the previous `nextPageToken`; a token that does not belong to the endpoint answers 400.
- `/users/v2` lists users of every status (1 active, 3 inactive, 5 employment ended; the dataset's deleted users
  are 5). `/contents` filters on `contentTypes` and also holds non-course items (videos). `/enrollments` lists
  active enrollments only (a withdrawn one is gone). `/learners/results` lists results of active users only
  unless `userStatuses` says otherwise; a few results have no `enrollmentId` (optional in the spec).
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
import xml.etree.ElementTree as ElementTree
from typing import Any

from .dataset import BASE_EPOCH, Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse

CLIENT_ID = "00000000-fa4e-4000-8000-000000000001"  # a UUID, as iSpring issues; plainly not a real one
CLIENT_SECRET = "FAKE-ispring-client-secret-for-tests-only"
_NS = uuid.UUID("6f0b3e36-5a0c-4d5e-9a53-1c2f3b4a5d6e")

_USER_STATUS = {"active": 1, "inactive": 3, "deleted": 5}
_ROLES = {"admin": "administrator", "instructor": "publisher", "manager": "department_administrator", "learner": "learner"}
_DONE = {"completed", "passed", "failed"}
# XML item element of each wrapped list (the spec's names; `learnerResult` is the docs' name for a result).
_ITEM_TAGS = {"userProfiles": "userProfile", "contentItems": "contentItem", "enrollments": "enrollment",
              "results": "learnerResult", "groups": "id", "userRoles": "userRole", "courseFields": "courseField",
              "manageableDepartmentIds": "id"}
_EXTRA_CONTENT = 3  # videos in the content library: listed by /contents, not courses


def uid(kind: str, number: int | str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}-{number}"))


def iso(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch)) if epoch else None


def day(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch)) if epoch else None


def to_xml(tag: str, value: Any) -> ElementTree.Element:
    element = ElementTree.Element(tag)
    if isinstance(value, list):
        for item in value:
            element.append(to_xml(_ITEM_TAGS.get(tag, "item"), item))
    elif isinstance(value, dict):
        for key, item in value.items():
            element.append(to_xml(key, item))
    elif isinstance(value, bool):
        element.text = "1" if value else "0"
    elif value is not None:
        element.text = str(value)
    return element


class IspringLearnApp(FakeProviderApp):
    name = "ispring_learn"
    stream_paths = {"users": "/users/v2", "courses": "/contents", "course_enrollments": "/learners/results"}

    def __init__(self, data: Dataset, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET, xml: Any = False,
                 token_ttl: Any = 1800, advertised_ttl: Any = None, max_page_size: Any = 1000, **options: Any) -> None:
        super().__init__(data, **options)
        self.client_id, self.client_secret = client_id, client_secret
        self.xml = str(xml).lower() in ("1", "true", "yes")
        self.token_ttl = float(token_ttl)
        self.advertised_ttl = int(float(advertised_ttl)) if advertised_ttl is not None else int(self.token_ttl)
        self.max_page_size = int(max_page_size)
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.tokens_issued = 0
        self.calls: list[tuple[str, str | None, int]] = []  # (path, pageToken, status) of every API call
        self.accepts: list[str] = []

    # ---- the connector's config -------------------------------------------------------------------------------------
    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "ispring_learn", "base_url": base_url, "client_id": self.client_id, "client_secret": self.client_secret}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {**self.config(base_url), "client_secret": "wrong-" + self.client_secret[6:]}

    # ---- what the API lists ------------------------------------------------------------------------------------------
    def listed_enrollments(self) -> list[Enrollment]:
        # Learner enrollments only (iSpring has no teaching rows), and only active ones: a withdrawn one is gone.
        return [e for e in super().listed_enrollments() if e.role == "learner" and e.state != "withdrawn"]

    def user_record_id(self, person: Person) -> str:
        return uid("user", person.id)

    def course_record_id(self, course: Course) -> str:
        return uid("content", course.id)

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return uid("enrollment", enrollment.id)

    @staticmethod
    def result_has_enrollment_id(enrollment: Enrollment) -> bool:
        return enrollment.id % 11 != 0

    # ---- errors ------------------------------------------------------------------------------------------------------
    def error(self, status: int, message: str, request: FakeRequest | None = None) -> FakeResponse:
        return self.answer({"code": status, "message": message}, request, status)

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        response = self.error(429, "Too many requests")  # the over-limit status is not documented; 429 assumed
        if retry_after is not None:
            response.headers["Retry-After"] = str(int(retry_after))
        return response

    def server_error(self, status: int) -> FakeResponse:
        return self.error(status, "Internal server error")

    def not_found(self) -> FakeResponse:
        return FakeResponse(404, "Unknown content item", content_type="text/plain")  # some 404s are plain text

    # ---- answers in the negotiated format ------------------------------------------------------------------------------
    def wants_xml(self, request: FakeRequest | None) -> bool:
        return self.xml or request is None or "application/json" not in request.headers.get("accept", "")

    def answer(self, body: dict[str, Any], request: FakeRequest | None, status: int = 200) -> FakeResponse:
        if self.wants_xml(request):
            document = ElementTree.tostring(to_xml("response", body), encoding="unicode")
            return FakeResponse(status, '<?xml version="1.0" encoding="UTF-8"?>\n' + document, content_type="application/xml; charset=utf-8")
        return FakeResponse(status, {k: v for k, v in body.items() if v is not None})

    # ---- routing -------------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.path == "/api/v3/token" and request.method == "POST":
            return self.token(request)
        self.accepts.append(request.headers.get("accept", ""))
        page_token = request.arg("pageToken")
        authorization = request.headers.get("authorization", "")
        token = authorization[len("Bearer "):] if authorization.startswith("Bearer ") else None
        expiry = self.tokens.get(token or "")
        if expiry is None or time.monotonic() >= expiry:
            self.calls.append((request.path, page_token, 401))
            return self.error(401, "Access token is invalid or expired" if token else "Authorization required", request)
        routes = {"/users/v2": ("userProfiles", self.users), "/contents": ("contentItems", self.contents),
                  "/enrollments": ("enrollments", self.enrollments), "/learners/results": ("results", self.results)}
        if request.path not in routes:
            self.calls.append((request.path, page_token, 404))
            return self.error(404, "Not found", request)
        key, source = routes[request.path]
        response = self.page(request, key, source(request))
        self.calls.append((request.path, page_token, response.status))
        return response

    def token(self, request: FakeRequest) -> FakeResponse:
        form = request.form()
        if form.get("grant_type") != "client_credentials" or not form.get("client_id"):
            return self.error(400, "Invalid request: grant_type must be client_credentials", request)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return self.error(401, "Invalid client credentials", request)
        token = secrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + self.token_ttl
        self.tokens_issued += 1
        return self.answer({"access_token": token, "expires_in": self.advertised_ttl, "token_type": "bearer"}, request)

    def page(self, request: FakeRequest, key: str, items: list[dict[str, Any]]) -> FakeResponse:
        try:
            size = int(request.arg("pageSize") or 1000)
        except ValueError:
            return self.error(400, "pageSize must be an integer", request)
        if size < 1:
            return self.error(400, "pageSize must be positive", request)
        size = min(size, self.max_page_size)
        start = 0
        if request.arg("pageToken"):
            try:
                path, offset = base64.urlsafe_b64decode(request.arg("pageToken").encode()).decode().rsplit(":", 1)
                start = int(offset)
            except (ValueError, UnicodeDecodeError):
                return self.error(400, "Invalid page token", request)
            if path != request.path:
                return self.error(400, "Invalid page token", request)
        end = start + size
        following = base64.urlsafe_b64encode(f"{request.path}:{end}".encode()).decode() if end < len(items) else None
        return self.answer({key: items[start:end], "nextPageToken": following}, request)

    # ---- rendering ------------------------------------------------------------------------------------------------------
    def users(self, request: FakeRequest) -> list[dict[str, Any]]:
        return [self.user(p, as_xml=self.wants_xml(request)) for p in sorted(self.listed_people(), key=lambda p: p.id)]

    def user(self, p: Person, as_xml: bool = False) -> dict[str, Any]:
        named = {"login": p.login, "email": p.email, "first_name": p.first_name, "last_name": p.last_name,
                 "department": p.custom.get("department") or None}
        # JSON answers carry fields as [{name, value}] (what clients see); XML as one element per field (legacy docs).
        fields: Any = named if as_xml else [{"name": k.upper(), "value": v or ""} for k, v in named.items()]
        role_id = uid("role", p.role)
        return {
            "userId": uid("user", p.id), "role": _ROLES[p.role], "roleId": role_id, "departmentId": uid("department", p.id % 3),
            "status": _USER_STATUS[p.status], "fields": fields, "addedDate": iso(p.created), "lastLoginDate": iso(p.last_login),
            "groups": [uid("group", p.id % 2)], "userRoles": [{"roleId": role_id, "roleType": _ROLES[p.role]}],
            "subordination": {"subordinationType": "inherit"}, "coSubordination": {"subordinationType": "no_supervisor"},
        }

    def contents(self, request: FakeRequest) -> list[dict[str, Any]]:
        wanted = set(request.query.get("contentTypes", []) + request.query.get("contentTypes[]", []))
        items = [self.content(c) for c in sorted(self.data.courses.values(), key=lambda c: c.id)]
        items += [self.video(n) for n in range(1, _EXTRA_CONTENT + 1)]
        return [item for item in items if not wanted or item["contentItemType"] in wanted]

    def content(self, c: Course) -> dict[str, Any]:
        kind = "LearningTrack" if c.kind == "path" else "Course"
        return {
            "contentItemId": uid("content", c.id), "title": c.name, "subtitle": None, "description": c.description or None,
            "userId": uid("user", 1), "addedDate": iso(c.created),
            "viewUrl": f"https://acme.ispringlearn.com/app/content-item/{uid('content', c.id)}",
            "type": kind.lower(), "contentItemType": kind,
            "courseFields": [{"fieldId": uid("course-field", "owner"), "fieldValue": c.custom.get("owner", "")}],
        }

    @staticmethod
    def video(number: int) -> dict[str, Any]:
        return {"contentItemId": uid("video", number), "title": f"Clip {number}", "subtitle": None, "description": None,
                "userId": uid("user", 1), "addedDate": iso(BASE_EPOCH + number * 3600), "viewUrl": f"https://acme.ispringlearn.com/app/video/{number}",
                "type": "video", "contentItemType": "Video", "courseFields": []}

    def enrollments(self, request: FakeRequest) -> list[dict[str, Any]]:
        return [self.enrollment(e) for e in self.listed_enrollments()]

    @staticmethod
    def group(e: Enrollment) -> int:
        """enrollmentTypeGroup: 0 assigned by an administrator, 1 picked from the catalogue. Every fifth of the
        dataset's assigned rows is a catalogue pick here, so that both kinds occur among not-started rows."""
        return 0 if e.state == "assigned" or (e.assigned and e.id % 5 != 0) else 1

    def enrollment(self, e: Enrollment) -> dict[str, Any]:
        certificate = None
        if e.state in ("completed", "passed") and e.completed:
            certificate = {"issuedCertificateId": uid("certificate", e.id), "issueDate": day(e.completed),
                           "expiryDate": day(e.completed + 365 * 86400) if e.id % 2 else None}
        return {
            "enrollmentId": uid("enrollment", e.id), "courseId": uid("content", e.course_id), "learnerId": uid("user", e.user_id),
            "accessDate": day(e.enrolled), "dueDate": day(e.due), "expirationDate": day(e.expires),
            "shouldLockAfterDueDate": e.expires is not None, "certificate": certificate, "enrollmentTypeGroup": self.group(e),
        }

    def results(self, request: FakeRequest) -> list[dict[str, Any]]:
        statuses = {int(s) for s in request.query.get("userStatuses", []) + request.query.get("userStatuses[]", []) if s.isdigit()} or {1}
        rows = []
        for e in self.listed_enrollments():
            if _USER_STATUS[self.data.people[e.user_id].status] in statuses:
                rows.append(self.result(e))
        return rows

    def result(self, e: Enrollment) -> dict[str, Any]:
        now = int(time.time())
        done = e.state in _DONE
        if e.state == "completed":
            status = "accepted" if e.id % 4 == 0 else "complete"
        elif done:
            status = e.state
        elif e.state in ("in_progress", "expired") and e.progress > 0:
            status = "pending" if e.id % 5 == 0 else "in_progress"
        else:
            status = "not_started"
        course = self.data.courses[e.course_id]
        row = {
            "userId": uid("user", e.user_id), "courseId": uid("content", e.course_id), "courseTitle": course.name,
            "enrollmentId": uid("enrollment", e.id) if self.result_has_enrollment_id(e) else None,
            "accessDate": iso(e.enrolled), "dueDate": iso(e.due), "expirationDate": iso(e.expires),
            "completionDate": iso(e.completed) if done else None, "duration": course.duration_seconds or 0,
            "timeSpent": e.time_spent, "completionStatus": status,
            "awardedScore": e.score, "passingScore": 80.0, "progress": float(e.progress),
            "isOverdue": bool(e.due and e.due < now and not done), "viewsCount": 0 if status == "not_started" else 1 + e.id % 7,
        }
        return row

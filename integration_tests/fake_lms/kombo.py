"""Fake Kombo unified LMS API, as documented (Kombo's OpenAPI, `api-evangelist/kombo:openapi/kombo-openapi.json`;
docs.kombo.dev/lms; docs/providers/kombo.md).

- `Authorization: Bearer <API key>` (wrong → 401 `PLATFORM.AUTHENTICATION_INVALID`) and `X-Integration-Id`
  (missing → 400 `PLATFORM.INPUT_INVALID`, unknown → 404 `PLATFORM.INTEGRATION_NOT_FOUND`). Kombo documents the
  codes, not the HTTP statuses that carry them: these statuses are this fake's choice, and the connector branches
  on the code, as Kombo asks.
- `GET /v1/lms/users`, `/v1/lms/courses`, `/v1/lms/course-progressions`: `{"status": "success", "data": {"next":
  "…" | null, "results": [...]}}`, paged by `page_size` (1–250, default 100, else 400) and `cursor`.
- `updated_after` (`YYYY-MM-DDTHH:mm:ss.sssZ`, else 400): records whose `changed_at` is at or after it; a course
  also when one of its revisions changed. A course's own `changed_at` stays at its creation: what changes (title,
  description, status) lives on its revision. `include_deleted=true` adds deleted records with `remote_deleted_at` (and
  `changed_at`) at their deletion time: what `Dataset.delete` removed, and users the LMS itself marks deleted (Kombo
  can no longer fetch them) with their progressions. Hidden otherwise.
- Records as in the OpenAPI examples: Kombo ids (24 characters), `remote_id`, ISO timestamps with milliseconds,
  `custom_fields`, `integration_fields: []`, `remote_data` keyed by the LMS endpoint path. A course carries its
  revisions (every third course has an older, INACTIVE revision too); progressions point to a revision, and every
  seventh one has `course_revision.course: null` (the schema allows it).
- Progressions are learners' only; statuses ENROLLED / IN_PROGRESS / COMPLETED / DROPPED, null for an expired one.
- Errors in Kombo's envelope `{"status": "error", "error": {"code", "title", "message", "log_url"}}`; a 429 has
  `PLATFORM.RATE_LIMIT_EXCEEDED` and `Retry-After` when the fault gives one (Kombo documents no rate-limit header);
  a 503 is `REMOTE.SERVICE_UNAVAILABLE`, passed through from the LMS.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from typing import Any

from .dataset import Course, Dataset, Enrollment, Person
from .server import FakeProviderApp, FakeRequest, FakeResponse, cursor_page

API_KEY = "kombo_fake_key_7f3c9a1e5b2d4f60"
INTEGRATION_ID = "successfactors:8d1hpPsbjxUkoCoa1veLZGe5"
_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_UPDATED_AFTER = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?)?Z?$")
_PROGRESSION = {"not_started": "ENROLLED", "assigned": "ENROLLED", "in_progress": "IN_PROGRESS", "completed": "COMPLETED",
                "passed": "COMPLETED", "failed": "COMPLETED", "withdrawn": "DROPPED", "expired": None}


def kombo_id(kind: str, number: int | str) -> str:
    """A deterministic Kombo-looking id (24 base58 characters) per record kind."""
    digest = int.from_bytes(hashlib.sha256(f"{kind}:{number}".encode()).digest()[:18], "big")
    out = []
    for _ in range(24):
        digest, rest = divmod(digest, 58)
        out.append(_ALPHABET[rest])
    return "".join(out)


def iso_ms(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch)) if epoch else None


def _epoch(text: str) -> float:
    text = text.rstrip("Z")
    whole, _, fraction = text.partition(".")
    if "T" not in whole:
        whole += "T00:00:00"
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{fraction or 0}")


def kombo_error(status: int, code: str | None, title: str | None, message: str, headers: dict[str, str] | None = None) -> FakeResponse:
    return FakeResponse(status, {"status": "error", "error": {"code": code, "title": title, "message": message,
                                                              "log_url": "https://app.kombo.dev/acme-prod/logs?interactionId=fake"}},
                        headers or {})


class KomboApp(FakeProviderApp):
    name = "kombo"
    stream_paths = {"users": "/v1/lms/users", "courses": "/v1/lms/courses", "course_enrollments": "/v1/lms/course-progressions"}

    def __init__(self, data: Dataset, api_key: str = API_KEY, integration_id: str = INTEGRATION_ID, **options: Any) -> None:
        super().__init__(data, **options)
        self.api_key = api_key
        self.integration_id = integration_id

    def config(self, base_url: str) -> dict[str, Any]:
        return {"provider_type": "kombo", "base_url": base_url, "api_key": self.api_key, "integration_id": self.integration_id}

    def bad_config(self, base_url: str) -> dict[str, Any]:
        return {**self.config(base_url), "api_key": "kombo_wrong_" + self.api_key[-12:]}

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        return kombo_error(429, "PLATFORM.RATE_LIMIT_EXCEEDED", "Rate limit exceeded.", "You have exceeded the rate limit. Please retry later.", headers)

    def server_error(self, status: int) -> FakeResponse:
        if status in (502, 503):
            return kombo_error(status, "REMOTE.SERVICE_UNAVAILABLE", "The remote system is unavailable.",
                               "SAP SuccessFactors answered 503 Service Unavailable.")
        return kombo_error(status, "PLATFORM.UNKNOWN_ERROR", "An unknown error occurred.", "Something went wrong on our side.")

    def not_found(self) -> FakeResponse:
        return kombo_error(404, None, None, "Not found.")

    # ---- what Kombo lists ---------------------------------------------------------------------------------------------
    def listed_people(self) -> list[Person]:
        # A user the LMS marks deleted cannot be fetched any more: Kombo marks it deleted and hides it.
        return [p for p in self.data.people.values() if p.status != "deleted"]

    def listed_enrollments(self) -> list[Enrollment]:
        return [e for e in super().listed_enrollments() if e.role == "learner"]

    def user_record_id(self, person: Person) -> str:
        return kombo_id("user", person.id)

    def course_record_id(self, course: Course) -> str:
        return kombo_id("course", course.id)

    def enrollment_record_id(self, enrollment: Enrollment) -> str:
        return kombo_id("progression", enrollment.id)

    # ---- routing --------------------------------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return kombo_error(401, "PLATFORM.AUTHENTICATION_INVALID", "The API key is invalid.",
                               "The provided API key is invalid. Create one on the Secrets page of the Kombo dashboard.")
        integration = request.headers.get("x-integration-id")
        if not integration:
            return kombo_error(400, "PLATFORM.INPUT_INVALID", "The input is invalid.", "The X-Integration-Id header is required.")
        if integration != self.integration_id:
            return kombo_error(404, "PLATFORM.INTEGRATION_NOT_FOUND", "The integration was not found.",
                               "No integration with this ID exists in this environment.")
        if not request.path.startswith("/v1/lms/"):
            return kombo_error(404, None, None, f"Route GET {request.path} not found.")
        resource = request.path[len("/v1/lms/"):].strip("/")
        try:
            page_size = int(request.arg("page_size") or 100)
        except ValueError:
            page_size = 0
        if not 1 <= page_size <= 250:
            return kombo_error(400, "PLATFORM.INPUT_INVALID", "The input is invalid.", "page_size: Number must be between 1 and 250.")
        updated_after = request.arg("updated_after")
        if updated_after is not None and not _UPDATED_AFTER.match(updated_after):
            return kombo_error(400, "PLATFORM.INPUT_INVALID", "The input is invalid.", "updated_after: Invalid datetime.")
        since = _epoch(updated_after) if updated_after else None
        deleted = request.arg("include_deleted") == "true"
        if resource == "users":
            records = [self.user(p, None) for p in self.listed_people()]
            if deleted:
                records += [self.user(p, p.updated) for p in self.data.people.values() if p.status == "deleted"]
                records += [self.user(p, when) for p, when in self.data.deleted.get("users", {}).values()]
        elif resource == "courses":
            records = [self.course(c, None) for c in self.data.courses.values()]
            if deleted:
                records += [self.course(c, when) for c, when in self.data.deleted.get("courses", {}).values()]
        elif resource == "course-progressions":
            records = [self.progression(e, None) for e in self.listed_enrollments()]
            if deleted:
                gone_people = {p.id: p.updated for p in self.data.people.values() if p.status == "deleted"}
                records += [self.progression(e, gone_people[e.user_id]) for e in self.data.enrollments.values()
                            if e.user_id in gone_people and e.role == "learner"]
                records += [self.progression(e, when) for e, when in self.data.deleted.get("enrollments", {}).values() if e.role == "learner"]
        else:
            return kombo_error(404, None, None, f"Route GET {request.path} not found.")
        if since is not None:
            records = [r for r in records if self.changed_since(r, since)]
        try:
            page, following = cursor_page(records, request.arg("cursor"), page_size)
        except (ValueError, KeyError):
            return kombo_error(400, "PLATFORM.INPUT_INVALID", "The input is invalid.", "cursor: Invalid cursor.")
        return FakeResponse(200, {"status": "success", "data": {"next": following, "results": page}})

    @staticmethod
    def changed_since(record: dict[str, Any], since: float) -> bool:
        stamps = [record["changed_at"], *(r["changed_at"] for r in record.get("revisions", []))]
        return any(_epoch(stamp) >= since for stamp in stamps)

    # ---- rendering (the OpenAPI examples' shapes) ------------------------------------------------------------------------
    def user(self, p: Person, deleted: int | None) -> dict[str, Any]:
        return {
            "id": kombo_id("user", p.id), "remote_id": str(p.id), "first_name": p.first_name, "last_name": p.last_name,
            "work_email": p.email, "status": "INACTIVE" if p.status == "inactive" else "ACTIVE",
            "remote_created_at": iso_ms(p.created), "remote_deleted_at": iso_ms(deleted),
            "changed_at": iso_ms(deleted or p.updated),
            "remote_data": {"/learning/odatav4/public/admin/user-service/v1/Users": {"studentID": p.login, "email": p.email}},
            "custom_fields": {"department": p.custom.get("department")}, "integration_fields": [],
        }

    @staticmethod
    def revision_ids(c: Course) -> list[str]:
        """The course's revisions, oldest first: every third course has an older one."""
        return [kombo_id("revision", f"{c.id}-old"), kombo_id("revision", c.id)] if c.id % 3 == 0 else [kombo_id("revision", c.id)]

    def course(self, c: Course, deleted: int | None) -> dict[str, Any]:
        current = {
            "id": kombo_id("revision", c.id), "remote_id": f"{c.code}-v2" if c.id % 3 == 0 else c.code,
            "course_id": kombo_id("course", c.id), "title": c.name, "description": c.description or None,
            "remote_url": f"https://acme.plateau.com/learning/user/deeplink.do?itemID={c.code}",
            "status": "INACTIVE" if c.status in ("inactive", "draft") else "ACTIVE",
            "remote_created_at": iso_ms(c.created), "remote_deleted_at": iso_ms(deleted),
            "changed_at": iso_ms(deleted or c.updated), "remote_data": None, "custom_fields": {"owner": c.custom.get("owner")},
            "integration_fields": [], "skill_assignments": [{"skill": {"id": kombo_id("skill", c.category[0]), "remote_id": c.category[0], "name": c.category[1]}}],
        }
        revisions = [current]
        if c.id % 3 == 0:
            older = {**current, "id": kombo_id("revision", f"{c.id}-old"), "remote_id": f"{c.code}-v1", "title": f"{c.name} (2023)",
                     "status": "INACTIVE", "remote_created_at": iso_ms(c.created - 86400 * 200), "changed_at": iso_ms(c.created - 86400 * 100),
                     "skill_assignments": []}
            revisions = [older, current]
        return {
            "id": kombo_id("course", c.id), "remote_id": c.code, "provider_id": kombo_id("provider", 1), "origin_id": None,
            # Title, description and status live on the revision: a change to them moves the revision's changed_at,
            # not the course's ("only updates when properties directly on this record change").
            "remote_created_at": iso_ms(c.created), "remote_deleted_at": iso_ms(deleted), "changed_at": iso_ms(deleted or c.created),
            "remote_data": {"/learning/odatav4/public/admin/item-service/v1/Items": {"itemID": c.code, "title": c.name}},
            "custom_fields": None, "integration_fields": [],
            "provider": {"id": kombo_id("provider", 1), "remote_id": "ACME", "name": "Acme Academy"},
            "revisions": revisions,
        }

    def progression(self, e: Enrollment, deleted: int | None) -> dict[str, Any]:
        person = self.data.people.get(e.user_id) or self.data.deleted.get("users", {}).get(e.user_id, (None,))[0]
        course = self.data.courses.get(e.course_id) or self.data.deleted.get("courses", {}).get(e.course_id, (None,))[0]
        revisions = self.revision_ids(course)
        revision = revisions[e.id % len(revisions)]  # some learners are still on a course's older revision
        done = e.completed if e.state in ("completed", "passed", "failed") else None
        return {
            "id": kombo_id("progression", e.id), "remote_id": f"{person.login}-{course.code}",
            "user_id": kombo_id("user", person.id), "course_revision_id": revision, "status": _PROGRESSION[e.state],
            "enrolled_at": iso_ms(e.enrolled), "completed_at": iso_ms(done), "changed_at": iso_ms(deleted or e.updated),
            "remote_deleted_at": iso_ms(deleted),
            "remote_data": {"/learning/odatav4/public/user/learningplan-service/v1/LearningPlan": {"studentID": person.login, "itemID": course.code}},
            "user": {"id": kombo_id("user", person.id), "remote_id": str(person.id), "first_name": person.first_name,
                     "last_name": person.last_name, "work_email": person.email},
            "course_revision": {"id": revision, "remote_id": course.code,
                                "title": course.name if revision == revisions[-1] else f"{course.name} (2023)",
                                "course": None if e.id % 7 == 0 else {"id": kombo_id("course", course.id), "remote_id": course.code}},
        }

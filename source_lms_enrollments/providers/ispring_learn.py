"""iSpring Learn, REST API v3 (https://api-learn.ispringlearn.com): users, content (courses, learning tracks), results.

Facts: ../shared/docs/providers-talentlms-ispring-docebo.md §2 and §4; the v3 OpenAPI at
https://api-learn.ispringlearn.com/docs/rest-api.
- Auth: OAuth2 client credentials at `POST /api/v3/token`; the token lives 30 minutes and has no refresh token,
  so it is renewed ahead of expiry (and on a 401) by the shared `OAuth2TokenAuthenticator`, whose token request is
  retried like any request (MAX_RETRIES, Retry-After, exponential jitter).
- Format: XML unless `Accept: application/json`; we ask for JSON and still read XML (a list of one element,
  0/1 booleans and empty elements included), since some hosts answer XML whatever is asked.
- Paging: `pageSize` (default and our value 1000) and `pageToken` = the previous page's `nextPageToken`, until
  that is absent or empty. No total count.
- No "modified since" filter and no modification time on users, content or results: every stream is read in
  full, and `updated_at` is null (design.md §4), so every record is emitted by every sync.
- Errors: `{"code": int, "message": str}` (or the same as XML `<response>`); some 404s are plain text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from typing import Any, Callable, Iterable, Mapping, MutableMapping, Optional

import orjson
import requests
from airbyte_cdk.models import SyncMode

from ..base import LmsProvider, LmsStream, parsed_once
from ..http_policy import CONNECT_TIMEOUT
from ..oauth import OAuth2TokenAuthenticator
from ..unified import full_name, iso_to_iso, lookup, now_iso, primary_emails, to_bool, to_number, to_percent, to_str

JSON_HEADERS = {"Accept": "application/json"}
# The API's default page size, and the largest seen in its docs; the maximum itself is not documented.
PAGE_SIZE = 1000
# /learners/results lists active users only unless asked (docs): 1 active, 3 inactive, 5 employment ended.
ALL_USER_STATUSES = ["1", "3", "5"]
COURSE_CONTENT_TYPES = ["Course", "LearningTrack"]


class IspringLearn(LmsProvider):
    provider_type = "ispring_learn"
    title = "iSpring Learn"
    default_base_url = "https://api-learn.ispringlearn.com"
    base_url_example = "https://api-learn.ispringlearn.com (EU: https://api-learn.ispringlearn.eu)"
    spec_required = ["client_id", "client_secret"]
    spec_properties = {
        "client_id": {
            "type": "string",
            "title": "Client ID",
            "description": "The client ID of an iSpring Learn API key (Integrations → API; Business plan).",
            "order": 2,
        },
        "client_secret": {
            "type": "string",
            "title": "Client secret",
            "description": "The client secret of the same API key.",
            "airbyte_secret": True,
            "order": 3,
        },
    }
    credential_hint = (
        "Check provider.client_id and provider.client_secret (an API key of the account, Business plan), and that "
        "provider.base_url is your region's API host (e.g. https://api-learn.ispringlearn.com, "
        "https://api-learn.ispring.com or https://api-learn.ispringlearn.eu), not the account's own address."
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/"

    def make_authenticator(self) -> OAuth2TokenAuthenticator:
        provider = self.config.provider
        return OAuth2TokenAuthenticator(
            f"{self.config.base_url}/api/v3/token",
            str(provider["client_id"]).strip(),
            str(provider["client_secret"]),
            provider_title=self.title,
            credential_hint=self.credential_hint,
            headers=JSON_HEADERS,
            parse_token=lambda response: body_of(response),
            describe_error=error_message,
            timeout=(CONNECT_TIMEOUT, self.config.read_timeout),
        )

    def streams(self) -> list[LmsStream]:
        return [IspringUsers(self), IspringCourses(self), IspringCourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        # Token plus one user: proves the key and the host. One page of one user is the cheapest listed call.
        self.authenticator.max_retries = 1  # like the check stream itself: answer quickly
        return IspringUsers(self, max_retries=1, page_size=1, one_page=True)


# ---- the API's answers: JSON or XML ----------------------------------------------------------------------------

# Elements that hold a list, whatever the number of children: in XML a list of one is otherwise a lone object.
XML_LIST_ELEMENTS = frozenset(
    {"userProfiles", "contentItems", "enrollments", "results", "learnerResults", "groups", "userRoles",
     "manageableDepartmentIds", "courseFields"}
)


def xml_to_data(element: ElementTree.Element) -> Any:
    """An XML element as JSON would have it: lists for the list elements above, objects for elements with
    children (a repeated child becomes a list), text for leaves; an empty element is null."""
    children = list(element)
    if element.tag in XML_LIST_ELEMENTS:
        return [xml_to_data(child) for child in children]
    if not children:
        text = (element.text or "").strip()
        return text or None
    data: dict[str, Any] = {}
    repeated: set[str] = set()
    for child in children:
        value = xml_to_data(child)
        if child.tag not in data:
            data[child.tag] = value
        elif child.tag in repeated:
            data[child.tag].append(value)
        else:
            data[child.tag] = [data[child.tag], value]
            repeated.add(child.tag)
    return data


def parse_xml(content: bytes) -> Any:
    # The API never sends a DTD; refusing one rules out entity tricks (expat itself caps entity expansion).
    if b"<!DOCTYPE" in content[:1024].upper():
        raise ValueError("a DTD is not expected in an iSpring answer")
    return xml_to_data(ElementTree.fromstring(content))


def is_xml(response: requests.Response) -> bool:
    if "xml" in response.headers.get("Content-Type", "").lower():
        return True
    return response.content.lstrip()[:1] == b"<"


def body_of(response: requests.Response) -> Any:
    """The answer as data, whichever of JSON or XML the host chose; ValueError when it is neither."""
    if is_xml(response):
        try:
            return parse_xml(response.content)
        except ElementTree.ParseError as error:
            raise ValueError(f"the answer is not valid XML ({error})") from None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"the answer is not valid JSON ({error})") from None


def error_message(response: requests.Response) -> Optional[str]:
    """`ErrorResponse.message` from a JSON or XML error body; a plain-text body as it is."""
    try:
        body = body_of(response)
    except ValueError:
        text = response.text.strip()
        return text[:200] if text else None
    if isinstance(body, Mapping) and body.get("message"):
        return str(body["message"])
    return None


class IspringStream(LmsStream):
    """One paged v3 list: `pageSize` + `pageToken`, items under `list_key`, JSON or XML."""

    refresh_on_401 = True  # a token rejected before its announced expiry is renewed once and the page retried
    list_key: str
    id_key: str

    def __init__(self, provider: IspringLearn, max_retries: Optional[int] = None, page_size: int = PAGE_SIZE, one_page: bool = False) -> None:
        kwargs = {"max_retries": max_retries} if max_retries is not None else {}
        super().__init__(provider, **kwargs)
        self.page_size = page_size
        self.one_page = one_page

    def request_headers(self, **_: Any) -> Mapping[str, Any]:
        return JSON_HEADERS

    def extra_params(self) -> MutableMapping[str, Any]:
        return {}

    def request_params(self, next_page_token: Optional[Mapping[str, Any]] = None, **_: Any) -> MutableMapping[str, Any]:
        params = {"pageSize": self.page_size, **self.extra_params()}
        if next_page_token:
            params.update(next_page_token)
        return params

    def describe_error(self, response: requests.Response) -> Optional[str]:
        return error_message(response)

    def page_of(self, response: requests.Response) -> Mapping[str, Any]:
        """The page object, read once per response (next_page_token needs it after parse_response)."""
        return parsed_once(response, self._parse_page)

    def _parse_page(self, response: requests.Response) -> Mapping[str, Any]:
        try:
            body = body_of(response)
        except ValueError as error:
            raise self.malformed(response, str(error)) from None
        if not isinstance(body, Mapping):
            raise self.malformed(response, f"expected an object with {self.list_key}; is provider.base_url the iSpring Learn API host?")
        if self.list_key not in body:
            raise self.malformed(response, f"expected an object with {self.list_key}; is provider.base_url the iSpring Learn API host?")
        items = body[self.list_key]
        if items is None:
            items = []  # an empty XML list element reads as null
        if not isinstance(items, list) or not all(isinstance(item, Mapping) and item.get(self.id_key) for item in items):
            raise self.malformed(response, f"expected {self.list_key} to be a list of objects, each with {self.id_key}")
        return {"items": items, "next": to_str(body.get("nextPageToken"))}

    def items_of(self, response: requests.Response) -> list[Mapping[str, Any]]:
        return self.page_of(response)["items"]

    def mapped(self, response: requests.Response, mapper: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Iterable[dict[str, Any]]:
        """Each item through its mapper; a value the mapper cannot read (a date in an unknown format) ends the
        sync naming the endpoint, rather than being nulled."""
        for raw in self.items_of(response):
            try:
                yield mapper(raw)
            except (ValueError, TypeError) as error:
                raise self.malformed(response, f"unreadable {self.id_key} {raw.get(self.id_key)!r}: {error}") from None

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        if self.one_page:
            return None
        token = self.page_of(response)["next"]
        return {"pageToken": token} if token else None


class IspringUsers(IspringStream):
    """GET /users/v2: every user, active, inactive and employment ended (status 1, 3, 5)."""

    unified_name = "users"
    list_key = "userProfiles"
    id_key = "userId"

    def path(self, **_: Any) -> str:
        return "users/v2"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_user(raw, keep_raw))

    def marked_deleted(self, record: Mapping[str, Any]) -> bool:
        """Never: status 5 ("Employment Ended", mapped to `deleted`) is an account iSpring still keeps, with its
        results, not a deletion; a user deleted from the account is no longer listed (a tombstone, design.md §5a)."""
        return False


class IspringCourses(IspringStream):
    """GET /contents?contentTypes=Course&contentTypes=LearningTrack: what learners are enrolled in."""

    unified_name = "courses"
    list_key = "contentItems"
    id_key = "contentItemId"

    def path(self, **_: Any) -> str:
        return "contents"

    def extra_params(self) -> MutableMapping[str, Any]:
        return {"contentTypes": COURSE_CONTENT_TYPES}

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        yield from self.mapped(response, lambda raw: to_course(raw, keep_raw))


class IspringEnrollmentList(IspringStream):
    """GET /enrollments, unmapped: who assigned, due and certificate data, joined to results on enrollmentId."""

    unified_name = "enrollment_list"
    list_key = "enrollments"
    id_key = "enrollmentId"

    def path(self, **_: Any) -> str:
        return "enrollments"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        yield from self.items_of(response)


class IspringCourseEnrollments(IspringStream):
    """GET /learners/results (all user statuses) joined with GET /enrollments on enrollmentId and GET /users/v2
    for names and e-mails. Results carry no modification time and progress moves none of their dates, so
    `updated_at` is null and every enrollment is emitted by every sync (design.md §4)."""

    unified_name = "course_enrollments"
    list_key = "results"
    id_key = "courseId"

    def __init__(self, provider: IspringLearn, **kwargs: Any) -> None:
        super().__init__(provider, **kwargs)
        self._people: dict[str, dict[str, Any]] = {}
        self._enrollments: dict[str, Mapping[str, Any]] = {}
        self._by_pair: dict[tuple[str, str], Mapping[str, Any]] = {}

    def path(self, **_: Any) -> str:
        return "learners/results"

    def extra_params(self) -> MutableMapping[str, Any]:
        return {"userStatuses": ALL_USER_STATUSES}

    def partitions(self) -> Iterable[dict[str, Any]]:
        # The joins are read before the results; only what the records need is kept.
        self._people = {
            user["id"]: {"id": user["id"], "name": user["name"], "emails": user["emails"]}
            for user in IspringUsers(self.provider).records_of_slice(SyncMode.full_refresh, {})
        }
        self._enrollments, self._by_pair = {}, {}
        for enrollment in IspringEnrollmentList(self.provider).records_of_slice(SyncMode.full_refresh, {}):
            self._enrollments[str(enrollment["enrollmentId"])] = enrollment
            self._by_pair[(str(enrollment.get("learnerId")), str(enrollment.get("courseId")))] = enrollment
        yield {}

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        now = now_iso()
        yield from self.mapped(response, lambda result: self.joined(result, now, keep_raw))

    def joined(self, result: Mapping[str, Any], now: str, keep_raw: bool) -> dict[str, Any]:
        if not result.get("userId"):
            raise ValueError("no userId")
        user_id, course_id = str(result["userId"]), str(result["courseId"])
        # enrollmentId is optional in a result: the (learner, course) pair finds its enrollment then.
        enrollment = self._enrollments.get(str(result.get("enrollmentId") or "")) or self._by_pair.get((user_id, course_id))
        return to_course_enrollment(result, enrollment, self._people.get(user_id), now, keep_raw)


# ---- mappers: raw v3 payloads (JSON or XML-as-data) in, unified records out ------------------------------------

USER_STATUS = {"1": "active", "3": "inactive", "5": "deleted"}  # 5 = employment ended (terminated)
USER_ROLE = {"learner": "learner", "administrator": "admin", "department_administrator": "admin",
             "publisher": "instructor", "custom": "other"}
COURSE_TYPE = {"course": "course", "learningtrack": "path"}
_NAMED_FIELDS = frozenset({"login", "email", "first_name", "last_name"})


def profile_fields(raw: Any) -> dict[str, Any]:
    """UserV2 `fields` in any of its shapes, keyed by lower-case name: the JSON list of {name, value}, the
    object of the spec and of XML (`<fields><login>…</login>…`), or XML `<fields><field><name>…`."""
    if isinstance(raw, Mapping) and set(raw) == {"field"}:
        raw = raw["field"] if isinstance(raw["field"], list) else [raw["field"]]
    # An empty value is null in every shape: JSON says "", XML an empty element.
    if isinstance(raw, list):
        return {str(item.get("name")).lower(): item.get("value") if item.get("value") != "" else None
                for item in raw if isinstance(item, Mapping) and item.get("name")}
    if isinstance(raw, Mapping):
        return {str(key).lower(): value if value != "" else None for key, value in raw.items()}
    return {}


def _number(value: Any) -> int | float | None:
    """A JSON number or an XML string as a number; whole values as int, so JSON 45.0 and XML "45" agree."""
    number = to_number(value)
    return int(number) if isinstance(number, float) and number.is_integer() else number


def _status_key(value: Any) -> Optional[str]:
    number = to_number(value)
    return str(int(number)) if number is not None else None


def to_user(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    fields = profile_fields(raw.get("fields"))
    first, last, login = to_str(fields.get("first_name")), to_str(fields.get("last_name")), to_str(fields.get("login"))
    return {
        "id": str(raw["userId"]),
        "name": full_name(first, last) or login,
        "first_name": first,
        "last_name": last,
        "username": login,
        "emails": primary_emails(to_str(fields.get("email"))),
        "status": lookup(USER_STATUS, _status_key(raw.get("status"))),
        "role": lookup(USER_ROLE, raw.get("role"), default="other"),
        "locale": None,
        "timezone": None,
        "job_title": None,
        "last_login_at": iso_to_iso(raw.get("lastLoginDate")),
        "created_at": iso_to_iso(raw.get("addedDate")),
        "updated_at": None,  # no modification time; a rename moves no date (design.md §4)
        "custom_fields": {key: value for key, value in fields.items() if key not in _NAMED_FIELDS},
        "remote_data": dict(raw) if keep_raw else None,
    }


def course_fields(raw: Any) -> dict[str, Any]:
    """`courseFields` [{fieldId, fieldValue}] as {fieldId: fieldValue}."""
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, Mapping) else []
    return {str(item["fieldId"]): item.get("fieldValue") for item in items if isinstance(item, Mapping) and item.get("fieldId")}


def to_course(raw: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    kind = raw.get("contentItemType") or raw.get("type")  # `type` is the deprecated spelling
    view_url = to_str(raw.get("viewUrl"))
    custom = course_fields(raw.get("courseFields"))
    subtitle = to_str(raw.get("subtitle"))
    if subtitle:
        custom["subtitle"] = subtitle
    return {
        "id": str(raw["contentItemId"]),
        "title": to_str(raw.get("title")),
        "description": to_str(raw.get("description")),
        "code": None,
        "type": lookup(COURSE_TYPE, kind, default="other"),
        "status": "unknown",  # content has no published/draft field
        "language": None,
        "duration_seconds": None,
        "urls": [{"url": view_url, "type": "view"}] if view_url else [],
        "categories": [],
        "tags": [],
        "created_at": iso_to_iso(raw.get("addedDate")),
        "updated_at": None,  # no modification time; a retitle moves no date (design.md §4)
        "custom_fields": custom,
        "remote_data": dict(raw) if keep_raw else None,
    }


_DONE = {"complete": "completed", "accepted": "completed", "passed": "passed", "failed": "failed", "declined": "failed"}


def assigned_by_admin(enrollment: Optional[Mapping[str, Any]]) -> Optional[bool]:
    """`enrollmentTypeGroup`: 0 assigned by an administrator, 1 chosen from the catalogue; None when unknown."""
    group = to_number(enrollment.get("enrollmentTypeGroup")) if enrollment else None
    return None if group is None else group == 0


def expiration_of(result: Mapping[str, Any], enrollment: Optional[Mapping[str, Any]]) -> Optional[str]:
    return iso_to_iso(result.get("expirationDate")) or (iso_to_iso(enrollment.get("expirationDate")) if enrollment else None)


def enrollment_status(result: Mapping[str, Any], enrollment: Optional[Mapping[str, Any]], now: str) -> str:
    """The iSpring rules of providers doc §4.2; the first match wins."""
    completion = str(result.get("completionStatus") or "").strip().lower()
    if completion in _DONE:
        return _DONE[completion]
    expires = expiration_of(result, enrollment)
    if expires is not None and expires < now:
        return "expired"
    if to_bool(result.get("isOverdue")):
        return "overdue"
    if completion in ("in_progress", "pending"):
        return "in_progress"
    if completion == "incomplete":
        progress = to_number(result.get("progress"))
        return "in_progress" if progress else "enrolled"
    if completion == "not_started":
        # Our convention: an administrator's assignment not yet started is `assigned`; a catalogue pick is `enrolled`.
        return "assigned" if assigned_by_admin(enrollment) else "enrolled"
    return "unknown"


def certificate_fields(result: Mapping[str, Any], enrollment: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """Certificate and access-expiry data, under the legacy API's names: v3 nests them in `certificate`."""
    source = enrollment or {}
    certificate = source.get("certificate") if isinstance(source.get("certificate"), Mapping) else {}
    values = {
        "issuedCertificateId": to_str(certificate.get("issuedCertificateId") or source.get("issuedCertificateId")),
        "certIssueDate": iso_to_iso(certificate.get("issueDate") or source.get("certIssueDate")),
        "certExpiryDate": iso_to_iso(certificate.get("expiryDate") or source.get("certExpiryDate")),
        "expirationDate": expiration_of(result, enrollment),
    }
    return {key: value for key, value in values.items() if value is not None}


def to_course_enrollment(
    result: Mapping[str, Any],
    enrollment: Optional[Mapping[str, Any]],
    person: Optional[Mapping[str, Any]],
    now: str,
    keep_raw: bool = False,
) -> dict[str, Any]:
    """A LearnerResult, with its Enrollment (join on enrollmentId) and its user (names and e-mails)."""
    user_id, course_id = str(result["userId"]), str(result["courseId"])
    enrollment_id = to_str(result.get("enrollmentId")) or (to_str(enrollment.get("enrollmentId")) if enrollment else None)
    access = iso_to_iso(result.get("accessDate")) or (iso_to_iso(enrollment.get("accessDate")) if enrollment else None)
    due = iso_to_iso(result.get("dueDate")) or (iso_to_iso(enrollment.get("dueDate")) if enrollment else None)
    by_admin = assigned_by_admin(enrollment)
    time_spent = to_number(result.get("timeSpent"))
    return {
        "id": enrollment_id or f"{user_id}:{course_id}",
        "user": {
            "id": user_id,
            "name": person["name"] if person else None,
            "emails": person["emails"] if person else [],
        },
        "course": {"id": course_id, "title": to_str(result.get("courseTitle"))},
        "status": enrollment_status(result, enrollment, now),
        "assigned_at": access if by_admin else None,
        "due_at": due,
        "enrolled_at": access,
        "started_at": None,  # no first-launch date; accessDate is when access was granted
        "last_activity_at": None,
        "completed_at": iso_to_iso(result.get("completionDate")),
        "progress_percent": to_percent(_number(result.get("progress"))),
        "time_spent_seconds": int(time_spent) if time_spent is not None else None,
        "score": _number(result.get("awardedScore")),
        "is_mandatory": by_admin,  # heuristic: an administrator's assignment counts as mandatory
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,  # viewsCount counts views, not attempts
        "urls": [],
        "created_at": access,
        "updated_at": None,  # no modification time; progress moves no date (design.md §4)
        "custom_fields": certificate_fields(result, enrollment),
        "remote_data": {"result": dict(result), "enrollment": dict(enrollment) if enrollment else None} if keep_raw else None,
    }

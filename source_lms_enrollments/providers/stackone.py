"""StackOne unified LMS API (https://api.stackone.com/unified/lms): users, courses, content, assignments and
completions of the LMS behind one StackOne linked account (360Learning, Cornerstone, Coursera, Docebo, Go1, LinkedIn
Learning, SAP SuccessFactors, TalentLMS, Udemy, Workday Learning, …).

Facts: docs/providers/stackone.md (with sources: StackOne's LMS OpenAPI in StackOneHQ/hub-docs
lms/api-reference/lms.json, its guides, docs.stackone.com/guides/rate-limiting).
- Auth: HTTP Basic with the API key as user name and an empty password; `x-account-id: <linked account id>` on every
  unified call.
- Paging: `page_size` (default 25; no maximum documented) and an opaque `next` in the body, sent back as `next`; null
  or absent means the last page. A page may come back short, even empty, with a `next` ("early cursor return").
- Pass-through: StackOne calls the LMS in real time. `filter[updated_after]` on every list (the top-level
  `updated_after` is deprecated): changes since a time, where StackOne or the LMS can tell.
- No deletion flag in the read model: deletions show only as records gone from a complete listing.
- Errors: `{"statusCode", "message", "timestamp", "errorCode"?, "provider_errors"?: [{"status", "url", "raw"}]}`;
  `provider_errors` is what the LMS behind StackOne answered.
- Rate limit: 1,000 requests a minute per API key; a 429 (and a 408) carries `Retry-After` in seconds.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from typing import Any, Iterable, Iterator, Mapping

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..base import BodyCursorStream, HeaderAuth, LmsProvider, LmsStream, config_error
from ..unified import epoch_to_iso, iso_duration_to_seconds, iso_to_iso, latest, lookup, parse_iso, primary_emails, raw_copy, to_number, to_percent, to_str

logger = logging.getLogger("airbyte")

UPDATED_AFTER = "filter[updated_after]"
# Above this many learners touched since the last sync, the enrollment stream reads both lists in full instead of
# two per-learner lists for each (2 requests per learner against about (assignments + completions) / PAGE_SIZE).
PER_LEARNER_LIMIT = 25


class StackOne(LmsProvider):
    provider_type = "stackone"
    title = "StackOne"
    default_base_url = "https://api.stackone.com"
    base_url_example = "https://api.stackone.com"
    spec_required = ["api_key", "account_id"]
    spec_properties = {
        "api_key": {
            "type": "string",
            "title": "API key",
            "description": "A StackOne API key of the project the linked account belongs to (StackOne dashboard → API Keys). Sent as the HTTP Basic user name.",
            "airbyte_secret": True,
            "order": 2,
        },
        "account_id": {
            "type": "string",
            "title": "Account ID",
            "description": "The id of the customer's linked LMS account in StackOne (dashboard → Accounts). Sent as the x-account-id header.",
            "examples": ["46132201201510402136"],
            "order": 3,
        },
    }
    credential_hint = (
        "Check provider.api_key (a StackOne API key of the project) and provider.account_id (a linked LMS account of "
        "that project, whose credentials in the LMS are still valid)."
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/unified/lms/"
        self._meta: dict[str, Any] | None = None
        self._meta_lock = threading.Lock()

    def account_meta(self) -> dict[str, Any]:
        """The linked account's `provider` (the LMS behind StackOne, e.g. "docebo") and `category`, from
        GET /accounts/{id}/meta, once per sync; {} when StackOne does not answer it (an API key without the
        accounts scope): the records then do not name the LMS, and the sync goes on."""
        with self._meta_lock:
            if self._meta is None:
                try:
                    found = next(iter(StackOneAccountMeta(self).records_of_slice(SyncMode.full_refresh, {})), {})
                except AirbyteTracedException as error:
                    logger.warning(f"StackOne: the linked account's LMS could not be read ({error.message}); records will not name it.")
                    found = {}
                self._meta = dict(found)
            return self._meta

    def lms_name(self) -> str | None:
        return to_str(self.account_meta().get("provider"))

    def check(self) -> None:
        category = to_str(self.account_meta().get("category"))
        if category and category != "lms":
            raise config_error(f"provider.account_id is a linked account of StackOne's {category} category, not lms: "
                               "give the id of the customer's linked LMS account.")
        super().check()

    def make_authenticator(self) -> HeaderAuth:
        # HTTP Basic, the API key as user name and no password (`curl -u "$KEY:"`), and the linked account's id.
        api_key = str(self.config.provider["api_key"])
        basic = base64.b64encode(f"{api_key}:".encode()).decode()  # derived at run time: masked too
        return HeaderAuth({"Authorization": f"Basic {basic}", "x-account-id": str(self.config.provider["account_id"]).strip()}, secrets=[api_key, basic])

    def streams(self) -> list[LmsStream]:
        return [StackOneUsers(self), StackOneCourses(self), StackOneCourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        return StackOneUsers(self, max_retries=1, page_size=1)


class StackOneAccountMeta(LmsStream):
    """GET /accounts/{id}/meta (StackOne's platform API): `{"provider", "category", "models"}` of the linked account."""

    unified_name = "account_meta"

    def __init__(self, provider: "StackOne") -> None:
        super().__init__(provider, max_retries=1)

    @property
    def url_base(self) -> str:
        return f"{self.config.base_url}/"

    def path(self, **_: Any) -> str:
        return f"accounts/{self.config.provider['account_id'].strip()}/meta"

    def endpoint_name(self, url: str | None) -> str:
        return "/accounts/{account_id}/meta"  # the id is a config value: never in a message

    def next_page_token(self, response: requests.Response) -> None:
        return None

    def describe_error(self, response: requests.Response) -> str | None:
        return stackone_error_message(response)

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        body = self.json_of(response)
        if not isinstance(body, dict):
            raise self.malformed(response, "expected an object with provider and category")
        yield body


class StackOneStream(BodyCursorStream):
    """`{"next": "…" | null, "data": [...]}`; the slice carries `filter[updated_after]` when the read filters on the
    server (the CDK gives request_params no sync mode)."""

    records_key = "data"
    cursor_key = "next"
    cursor_param = "next"
    page_size_param = "page_size"
    # StackOne documents a default of 25 and no maximum; every page is at least one call of the LMS behind it.
    page_size = 100

    def list_params(self, stream_slice: Mapping[str, Any] | None) -> dict[str, Any]:
        since = (stream_slice or {}).get(UPDATED_AFTER)
        return {UPDATED_AFTER: since} if since else {}

    def pages_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[tuple[requests.Response, Mapping[str, Any]]]:
        since = self.since_on_server(sync_mode)
        if since:
            stream_slice = {**stream_slice, UPDATED_AFTER: updated_after_param(since)}
        yield from super().pages_of_slice(sync_mode, stream_slice)

    def describe_error(self, response: requests.Response) -> str | None:
        return stackone_error_message(response)

    def provider_error_rule(self, response: requests.Response) -> ErrorResolution | None:
        return stackone_error_rule(response, self.ignore_not_found)


def updated_after_param(since: str) -> str:
    """One second before the cursor, in StackOne's example format: "updated after" reads as strictly after, and the
    cursor is kept to the second, so a record changed in the cursor's own second is asked for again."""
    moved = epoch_to_iso(parse_iso(since).timestamp() - 1) or since
    return moved.replace("Z", ".000Z")


def stackone_error_rule(response: requests.Response, per_learner: bool) -> ErrorResolution | None:
    """StackOne's statuses that mean something particular here (its connector-errors guide)."""
    status = response.status_code
    if status == 412:
        return ErrorResolution(ResponseAction.FAIL, FailureType.config_error,
                               "The linked account belongs to a disabled integration: re-enable it in StackOne or check provider.account_id.")
    if status == 501:
        # "Feature not supported for this provider": this LMS has no such list (e.g. no content); read as empty.
        return ErrorResolution(ResponseAction.IGNORE, None, "The LMS behind StackOne does not support this list; read as empty.")
    if status == 404 and not per_learner:
        # A list answers 404 for an account id StackOne does not know (connector-errors guide: "Invalid account_id").
        return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, "Check provider.account_id: StackOne knows no such linked account for this API key.")
    return None


def stackone_error_message(response: requests.Response) -> str | None:
    """StackOne's `message` (and `errorCode`), then what the LMS behind it answered (`provider_errors`), without the
    LMS's URLs or headers (they can carry the tenant or tokens)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    parts = []
    message = to_str(body.get("message"))
    if message:
        code = to_str(body.get("errorCode"))
        parts.append(f"StackOne said: {message}" + (f" ({code})" if code else ""))
    lms = []
    for error in body.get("provider_errors") or []:
        if not isinstance(error, dict):
            continue
        said = _raw_error_text(error.get("raw"))
        status = error.get("status")
        lms.append((f"HTTP {status}" if status is not None else "an error") + (f": {said}" if said else ""))
    if lms:
        parts.append("the LMS behind StackOne answered " + "; ".join(lms[:3]))
    return "; ".join(parts) or None


def _raw_error_text(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw[:150] or None
    if isinstance(raw, dict):
        for key in ("message", "error_description", "error", "detail", "title"):
            value = raw.get(key)
            if isinstance(value, str) and value:
                return value[:150]
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"][:150]
    return None


class StackOneUsers(StackOneStream):
    """GET /unified/lms/users?filter[updated_after]=…"""

    unified_name = "users"
    server_side_filter = True

    def path(self, **_: Any) -> str:
        return "users"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw, lms = self.config.include_remote_data, self.provider.lms_name()
        yield from self.mapped(response, lambda raw: to_user(raw, keep_raw, lms))


class StackOneCourses(StackOneStream):
    """GET /unified/lms/courses and GET /unified/lms/content, both with filter[updated_after]: every learning object a
    learner can be assigned that StackOne lists (assignments name a `learning_object_type` of course, content or
    collection; collections have no list)."""

    unified_name = "courses"
    server_side_filter = True
    KINDS = ("courses", "content")

    def partitions(self) -> Iterable[dict[str, Any]]:
        for kind in self.KINDS:
            yield {"kind": kind}

    def path(self, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> str:
        return (stream_slice or {}).get("kind") or "courses"

    def parse_response(self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw, lms = self.config.include_remote_data, self.provider.lms_name()
        mapper = to_content if (stream_slice or {}).get("kind") == "content" else to_course
        yield from self.mapped(response, lambda raw: mapper(raw, keep_raw, lms))

    def all_titles(self) -> dict[str, str | None]:
        """id -> title of every course and content item: the course join of the enrollment stream."""
        return {record["id"]: record["title"] for kind in self.partitions()
                for record in self.records_of_slice(SyncMode.full_refresh, kind)}


class StackOneLearningRecords(StackOneStream):
    """A helper list of assignments or completions (not a unified stream): raw records, keyed by learner."""

    require_item_ids = False  # their `id` is nullable in StackOne's schema; keyed by user and learning object

    def __init__(self, provider: LmsProvider, resource: str, learner: str | None = None) -> None:
        self.ignore_not_found = learner is not None  # a learner deleted since their record changed
        self.resource = resource  # before the base's init, which reads `name`
        self.learner = learner
        super().__init__(provider)

    @property
    def unified_name(self) -> str:  # type: ignore[override]
        return self.resource

    def path(self, **_: Any) -> str:
        if self.learner is None:
            return self.resource
        return f"users/{self.learner}/{self.resource}"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        yield from self.records_of(response)

    def listed(self, since: str | None = None) -> Iterator[Mapping[str, Any]]:
        return self.records_of_slice(SyncMode.full_refresh, {UPDATED_AFTER: updated_after_param(since)} if since else {})


class StackOneCourseEnrollments(StackOneStream):
    """Learners' assignments joined with their completions, one record per (user, learning object).

    A full listing (full refresh, a first sync, a deletion sweep): GET /unified/lms/assignments and
    GET /unified/lms/completions, joined here. Incremental: both lists with filter[updated_after] say which learners
    changed; each such learner's records are then read whole (GET /unified/lms/users/{id}/assignments and
    /completions), so that a record built from an assignment and a completion is rebuilt whole when either changed
    (beyond PER_LEARNER_LIMIT learners, both lists are read whole instead). The users and courses lists give names
    and titles, read only when a record comes.
    """

    unified_name = "course_enrollments"
    server_side_filter = True
    pair_id = True  # "{user_id}:{learning_object_id}": a tombstone still names both

    def path(self, **_: Any) -> str:
        return "assignments"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        return ()  # records come from records_of_slice's join, never from a page of this stream's own

    def records_of_slice(self, sync_mode: SyncMode, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        pairs = join_learning_records(*self._learning_records(self.since_on_server(sync_mode)))
        if not pairs:
            return
        people = self.person_directory(StackOneUsers(self.provider))
        titles = StackOneCourses(self.provider).all_titles()
        keep_raw, lms = self.config.include_remote_data, self.provider.lms_name()
        unjoined = 0
        for (user_id, object_id), (assignment, completions) in pairs.items():
            if user_id not in people or object_id not in titles:
                unjoined += 1
                continue
            course = {"id": object_id, "title": titles[object_id]}
            try:
                yield to_course_enrollment(people[user_id], course, assignment, completions, keep_raw, lms)
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                raise self.malformed_record(f"the records of learner {user_id!r} on {object_id!r} could not be read ({error})") from None
        if unjoined:
            logger.warning(
                f"StackOne: {unjoined} learner record(s) name a user that /unified/lms/users does not list or a learning "
                "object that neither /courses nor /content lists (e.g. a collection): not emitted, so that joins hold."
            )

    def _learning_records(self, since: str | None) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
        provider = self.provider
        if since is None:
            return (list(StackOneLearningRecords(provider, "assignments").listed()),
                    list(StackOneLearningRecords(provider, "completions").listed()))
        changed = [*StackOneLearningRecords(provider, "assignments").listed(since),
                   *StackOneLearningRecords(provider, "completions").listed(since)]
        learners = sorted({str(r["user_id"]) for r in changed if r.get("user_id") not in (None, "")})
        if len(learners) > PER_LEARNER_LIMIT:
            return self._learning_records(None)
        assignments: list[Mapping[str, Any]] = []
        completions: list[Mapping[str, Any]] = []
        for learner in learners:
            assignments += StackOneLearningRecords(provider, "assignments", learner).listed()
            completions += StackOneLearningRecords(provider, "completions", learner).listed()
        return assignments, completions

    def malformed_record(self, what: str) -> AirbyteTracedException:
        message = f"{self.provider.title} GET /unified/lms/assignments + /completions: {what}."
        return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)


# ---- mappers: StackOne records in, unified records out --------------------------------------------------------------

ASSIGNMENT_STATUS = {"pending": "assigned", "in_progress": "in_progress", "completed": "completed"}
RESULT_STATUS = {"pass": "passed", "fail": "failed"}


def _value(enum_object: Any) -> Any:
    """StackOne's enums are `{"value": …, "source_value": …}`: the unified value (the LMS's own stays in remote_data)."""
    return enum_object.get("value") if isinstance(enum_object, dict) else enum_object


def _active(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    return None


# The custom field that names the LMS behind StackOne (the linked account's `provider`), where StackOne says it.
LMS_FIELD = "stackone_provider"


def _custom(raw: Mapping[str, Any], lms: str | None = None) -> dict[str, Any]:
    value = raw.get("unified_custom_fields")
    fields = dict(value) if isinstance(value, dict) else {}
    if lms:
        fields[LMS_FIELD] = lms
    return fields


# A whole ISO 8601 duration, years and months included (they have no fixed length in seconds).
_ISO_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+([.,]\d+)?S)?)?$")


def _seconds(duration: Any) -> int | None:
    """An ISO 8601 duration in seconds; None for one in years or months (no fixed length: StackOne's own example is
    P3Y6M4DT12H30M5S); anything that is not an ISO 8601 duration is refused (ValueError)."""
    try:
        return iso_duration_to_seconds(duration)
    except ValueError:
        if _ISO_DURATION.match(str(duration).strip().upper()):
            return None
        raise


def _language(languages: Any) -> str | None:
    if isinstance(languages, list) and languages:
        value = to_str(_value(languages[0]))
        return value.replace("_", "-") if value and value != "unmapped_value" else None
    return None


def _named(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if isinstance(item, dict) and (item.get("id") or item.get("name")):
            out.append({"id": to_str(item.get("id")), "name": to_str(item.get("name"))})
        elif isinstance(item, str) and item:
            out.append({"id": None, "name": item})
    return out


def _urls(*pairs: tuple[Any, str]) -> list[dict[str, Any]]:
    return [{"url": str(url), "type": kind} for url, kind in pairs if url]


def to_user(raw: Mapping[str, Any], keep_raw: bool = False, lms: str | None = None) -> dict[str, Any]:
    active = _active(raw.get("active"))
    return {
        "id": str(raw["id"]),
        "name": to_str(raw.get("name")),
        "first_name": None,
        "last_name": None,
        "username": None,
        "emails": primary_emails(to_str(raw.get("email")), kind=None),  # LmsUser has one e-mail, of no stated type
        "status": "unknown" if active is None else "active" if active else "inactive",
        "role": None,  # LmsUser has no role
        "locale": None,
        "timezone": None,
        "job_title": None,
        "last_login_at": None,
        "created_at": iso_to_iso(raw.get("created_at")),
        "updated_at": iso_to_iso(raw.get("updated_at")),
        "custom_fields": _custom(raw, lms),
        "remote_data": raw_copy(raw, keep_raw),
    }


def _learning_object(raw: Mapping[str, Any], kind: str, urls: list[dict[str, Any]], tags: list[dict[str, Any]], keep_raw: bool,
                     lms: str | None) -> dict[str, Any]:
    active = _active(raw.get("active"))
    return {
        "id": str(raw["id"]),
        "title": to_str(raw.get("title")),
        "description": to_str(raw.get("description")),
        "code": None,  # external_reference is an id in another system, not a course code: kept in remote_data
        "type": kind,
        # Soft delete in StackOne sets a learning object inactive: hidden from learners, still listed.
        "status": "unknown" if active is None else "published" if active else "disabled",
        "language": _language(raw.get("languages")),
        "duration_seconds": _seconds(raw.get("duration")),
        "urls": urls,
        "categories": _named(raw.get("categories")),
        "tags": tags,
        "created_at": iso_to_iso(raw.get("created_at")),
        "updated_at": iso_to_iso(raw.get("updated_at")),
        "custom_fields": _custom(raw, lms),
        "remote_data": raw_copy(raw, keep_raw),
    }


def to_course(raw: Mapping[str, Any], keep_raw: bool = False, lms: str | None = None) -> dict[str, Any]:
    """A Course: "a collection of content type learning objects grouped together for a specific learning purpose"."""
    return _learning_object(raw, "course", _urls((raw.get("url"), "launch"), (raw.get("cover_url"), "image")), [], keep_raw, lms)


def to_content(raw: Mapping[str, Any], keep_raw: bool = False, lms: str | None = None) -> dict[str, Any]:
    """A Content item (video, document, quiz, …): assignable on its own (learning_object_type "content"). Type
    `other`: its content_type stays in remote_data."""
    urls = _urls((raw.get("content_url"), "launch"), (raw.get("mobile_launch_content_url"), "mobile"), (raw.get("cover_url"), "image"))
    return _learning_object(raw, "other", urls, _named(raw.get("tags")), keep_raw, lms)


def _learner(record: Mapping[str, Any]) -> str | None:
    return to_str(record.get("user_id"))


def _object_of(record: Mapping[str, Any]) -> str | None:
    # learning_object_id, else the deprecated course_id / content_id that older integrations fill.
    return to_str(record.get("learning_object_id")) or to_str(record.get("course_id")) or to_str(record.get("content_id"))


def join_learning_records(assignments: Iterable[Mapping[str, Any]], completions: Iterable[Mapping[str, Any]]
                          ) -> dict[tuple[str, str], tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]]:
    """(user id, learning object id) -> (its latest assignment or None, its completions latest first).

    A completion without an assignment is an enrollment too (a learner who took a course of their own accord).
    Records that name no user or no learning object cannot be joined and are left out.
    """
    pairs: dict[tuple[str, str], tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]] = {}
    for assignment in assignments:
        key = (_learner(assignment), _object_of(assignment))
        if None in key:
            continue
        current, done = pairs.get(key, (None, []))  # type: ignore[arg-type]
        if current is None or (iso_to_iso(assignment.get("updated_at")) or "") >= (iso_to_iso(current.get("updated_at")) or ""):
            current = assignment
        pairs[key] = (current, done)  # type: ignore[index]
    for completion in completions:
        key = (_learner(completion), _object_of(completion))
        if None in key:
            continue
        current, done = pairs.get(key, (None, []))  # type: ignore[arg-type]
        pairs[key] = (current, [*done, completion])  # type: ignore[index]
    for key, (current, done) in pairs.items():
        if len(done) > 1:
            done.sort(key=lambda c: iso_to_iso(c.get("completed_at")) or "", reverse=True)
    return pairs  # type: ignore[return-value]


def enrollment_status(assignment: Mapping[str, Any] | None, completion: Mapping[str, Any] | None) -> str:
    """A completion (with its Pass/Fail result) wins; else the assignment's status and result."""
    if completion is not None:
        return lookup(RESULT_STATUS, _value(completion.get("result")), "completed")
    if assignment is None:
        return "unknown"
    status = lookup(ASSIGNMENT_STATUS, _value(assignment.get("status")))
    if status == "completed":
        return lookup(RESULT_STATUS, _value(assignment.get("result")), "completed")
    return status


def to_course_enrollment(person: Mapping[str, Any], course: Mapping[str, Any], assignment: Mapping[str, Any] | None,
                         completions: list[Mapping[str, Any]], keep_raw: bool = False, lms: str | None = None) -> dict[str, Any]:
    """One learner on one learning object: `person` is {id, name, emails} from the users list, `course` {id, title}."""
    done = completions[0] if completions else None
    a = assignment or {}
    c = done or {}
    score = c.get("score")
    stamps = [iso_to_iso(a.get("updated_at"))] if assignment is not None else []
    stamps += [iso_to_iso(item.get("updated_at")) or iso_to_iso(item.get("completed_at")) for item in completions]
    # A record built from several is changed when any of them is: the latest of their times. None when the
    # assignment has none (an edit to it could not be seen): re-emitted every sync rather than lost.
    updated_at = None if (assignment is not None and stamps[0] is None) else latest(*stamps)
    certificate = c.get("certificate_url") or a.get("certificate_url")
    return {
        "id": f"{person['id']}:{course['id']}",
        "user": {"id": person["id"], "name": person.get("name"), "emails": person.get("emails")},
        "course": {"id": course["id"], "title": course.get("title")},
        "status": enrollment_status(assignment, done),
        "assigned_at": iso_to_iso(a.get("assigned_at")),
        "due_at": iso_to_iso(a.get("due_date")),
        "enrolled_at": None,
        "started_at": None,
        "last_activity_at": None,
        "completed_at": iso_to_iso(c.get("completed_at")) or iso_to_iso(a.get("completed_at")),
        # A completion is the learning object completed: 100 unless the assignment says its own progress.
        "progress_percent": to_percent(a.get("progress")) if a.get("progress") is not None else (100 if done is not None else None),
        "time_spent_seconds": _seconds(c.get("time_spent")),
        "score": to_number(score.get("percentage")) if isinstance(score, dict) else None,
        "is_mandatory": None,
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": _urls((certificate, "certificate")),
        "created_at": iso_to_iso(a.get("created_at")) if assignment is not None else iso_to_iso(c.get("created_at")),
        "updated_at": updated_at,
        "custom_fields": {**_custom(c), **_custom(a, lms)},
        "remote_data": {"assignment": dict(assignment) if assignment is not None else None,
                        "completions": [dict(item) for item in completions]} if keep_raw else None,
    }

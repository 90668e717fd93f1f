"""Northpass, API v2 (https://api.northpass.com/v2, JSON:API): people, courses and per-course enrollments.

Facts: ../shared/docs/providers-unified-northpass.md §1 and §4; the provider page docs/providers/northpass.md.
- Auth: the API key in the `X-Api-Key` header (never `?api_key=`: query strings end up in logs).
- Lists are JSON:API envelopes (`data[]` of `{type, id, attributes, relationships, links}`, top-level `links`),
  paged with `page` (1-based) and `limit`; a page without `links.next` is the last one.
- No server-side "changed since" filter (the lists take page/limit/filters on attributes only), so users and
  courses are read in full and filtered here; enrollment rows carry no modification time at all.
- 10 requests a second, 429 above that, no Retry-After documented: the provider paces itself under it.
- Errors: JSON:API `{"errors": [{"status", "title", "detail"}]}`.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, urlsplit

import requests
from airbyte_cdk.models import SyncMode

from ..base import LmsProvider, LmsStream, parsed_once
from ..unified import full_name, iso_to_iso, lookup, primary_emails, to_percent, to_str

# Northpass documents no maximum `limit`; 100 is what public clients send. Paging follows `links.next`, never
# the page size, so a smaller server cap only costs requests.
PAGE_SIZE = 100


class Northpass(LmsProvider):
    provider_type = "northpass"
    title = "Northpass"
    default_base_url = "https://api.northpass.com"
    base_url_example = "https://api.northpass.com"
    spec_required = ["api_key"]
    spec_properties = {
        "api_key": {
            "type": "string",
            "title": "API key",
            "description": "Created by an admin in Northpass (Apps → API Access). Sent in the X-Api-Key header.",
            "airbyte_secret": True,
            "order": 2,
        },
    }
    credential_hint = "Check provider.api_key (Northpass → Apps → API Access) and that it is still active."
    # developers.northpass.com/docs/api-rate-limiting: "10 requests/second ... 429 Too Many Requests". Our budget
    # spaces requests evenly when they leave; threads and the network can delay some into Northpass's window together
    # with later ones, so 8 leaves room for a quarter-second of jitter.
    max_requests_per_second = 8

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.api_base = f"{self.config.base_url}/v2/"

    def streams(self) -> list[LmsStream]:
        return [NorthpassUsers(self), NorthpassCourses(self), NorthpassCourseEnrollments(self)]

    def check_stream(self) -> LmsStream:
        return NorthpassUsers(self, max_retries=1)


class NorthpassStream(LmsStream):
    """A JSON:API list: `data[]` per page, `links.next` to the next page, errors in `errors[]`."""

    def request_headers(self, **_: Any) -> Mapping[str, Any]:
        return {"X-Api-Key": str(self.config.provider["api_key"]), "Accept": "application/json"}

    def request_params(self, next_page_token: Mapping[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        return {"limit": PAGE_SIZE, **(next_page_token or {})}

    def next_page_token(self, response: requests.Response) -> dict[str, str] | None:
        params = next_page_params(self._body(response))
        if params is None:
            return None
        # A link without `page` is page 1 (the documented links leave it out there). Pages only move forward: a
        # `next` at or before the page just read would loop forever.
        params.setdefault("page", "1")
        current = _page_of(response)
        if params["page"].isdigit() and current.isdigit() and int(params["page"]) <= int(current):
            raise self.malformed(response, f"links.next points back to page {params['page']} after page {current}; refusing to loop")
        return params

    def describe_error(self, response: requests.Response) -> str | None:
        return jsonapi_error_message(response)

    def _body(self, response: requests.Response) -> Mapping[str, Any]:
        return parsed_once(response, self._parse_body)

    def _parse_body(self, response: requests.Response) -> Mapping[str, Any]:
        body = self.json_of(response)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise self.malformed(response, "expected a JSON:API document with a data array; is provider.base_url the Northpass API host?")
        return body

    def resources_of(self, response: requests.Response) -> Iterator[Mapping[str, Any]]:
        for resource in self._body(response)["data"]:
            if not isinstance(resource, dict) or resource.get("id") in (None, "") or not isinstance(resource.get("attributes", {}), dict):
                raise self.malformed(response, "a data[] item has no id or its attributes are not an object")
            yield resource


def next_page_params(body: Mapping[str, Any]) -> dict[str, str] | None:
    """The query of `links.next`, or None on the last page (a link that does not apply is left out).

    Only the query is taken: the path and host stay ours, so a `next` link on another host can never receive the
    API key. The documented links carry `page` alone (`.../courses?page=3` answering `?page=2&limit=50`), so the
    request keeps its own `limit` unless the link names one.
    """
    links = body.get("links")
    link = links.get("next") if isinstance(links, dict) else None
    if isinstance(link, dict):  # JSON:API also allows a link object {"href": ...}
        link = link.get("href")
    if not link:
        return None
    return dict(parse_qsl(urlsplit(str(link)).query, keep_blank_values=True))


def _page_of(response: requests.Response) -> str:
    request_url = response.request.url if response.request is not None else response.url
    return dict(parse_qsl(urlsplit(request_url or "").query)).get("page", "1")


class NorthpassUsers(NorthpassStream):
    """GET /v2/people: every person of the school; filtered here on `attributes.updated_at`."""

    unified_name = "users"

    def path(self, **_: Any) -> str:
        return "people"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        for resource in self.resources_of(response):
            yield to_user(resource, keep_raw)


class NorthpassCourses(NorthpassStream):
    """GET /v2/courses: every course; filtered here on `attributes.updated_at`."""

    unified_name = "courses"

    def path(self, **_: Any) -> str:
        return "courses"

    def parse_response(self, response: requests.Response, **_: Any) -> Iterable[Mapping[str, Any]]:
        keep_raw = self.config.include_remote_data
        for resource in self.resources_of(response):
            yield to_course(resource, keep_raw)


class NorthpassCourseEnrollments(NorthpassStream):
    """GET /v2/courses/{id}/enrollments for each course of GET /v2/courses, joined with GET /v2/people.

    A row has `enrolled_at` and `progress` but no modification time, and progress moves no timestamp, so
    `updated_at` is null and every enrollment is emitted by every sync (design.md §4).
    """

    unified_name = "course_enrollments"
    pair_id = True  # ids are "{user_id}:{course_id}": a tombstone still names both
    ignore_not_found = True  # a course deleted after /courses listed it answers 404

    def __init__(self, provider: Northpass, **kwargs: Any) -> None:
        super().__init__(provider, **kwargs)
        self._people: dict[str, dict[str, Any]] = {}

    def partitions(self) -> Iterable[dict[str, Any]]:
        self._people = self.person_directory(NorthpassUsers(self.provider))
        for course in NorthpassCourses(self.provider).records_of_slice(SyncMode.full_refresh, {}):
            yield {"course_id": course["id"], "course_title": course["title"]}

    def path(self, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> str:
        return f"courses/{stream_slice['course_id']}/enrollments"

    def next_page_token(self, response: requests.Response) -> dict[str, str] | None:
        if response.status_code == 404:
            return None
        return super().next_page_token(response)

    def parse_response(self, response: requests.Response, stream_slice: Mapping[str, Any] | None = None, **_: Any) -> Iterable[Mapping[str, Any]]:
        if response.status_code == 404:  # vanished course, already logged as a warning by the error handler
            return
        course = {"id": stream_slice["course_id"], "title": stream_slice["course_title"]}
        keep_raw = self.config.include_remote_data
        for resource in self.resources_of(response):
            person_id = to_str((resource.get("attributes") or {}).get("person_id")) or _related_id(resource, "person")
            if person_id is None:
                raise self.malformed(response, f"enrollment {resource['id']} names no person")
            yield to_course_enrollment(resource, course, self._people.get(person_id), keep_raw)


def jsonapi_error_message(response: requests.Response) -> str | None:
    """`errors[].title: detail` of a JSON:API error document (https://jsonapi.org/format/#errors)."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return None
    if not isinstance(errors, list):
        return None
    parts = []
    for error in errors:
        if isinstance(error, dict):
            text = ": ".join(str(error[key]) for key in ("title", "detail") if error.get(key))
            if text:
                parts.append(text)
    return "; ".join(parts) or None


# ---- mappers: JSON:API resources in, unified records out ------------------------------------------------------

# Values seen in public clients (live / draft / archived, and `published`); the set is not documented.
COURSE_STATUS = {"live": "published", "published": "published", "draft": "draft", "archived": "archived"}
# `invite_token` activates an account: a secret, never stored (providers doc §1.11 item 3).
_SECRET_ATTRIBUTES = frozenset({"invite_token"})


def _attributes(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    return resource.get("attributes") or {}


def _related_id(resource: Mapping[str, Any], name: str) -> str | None:
    relation = (resource.get("relationships") or {}).get(name)
    data = relation.get("data") if isinstance(relation, dict) else None
    return to_str(data.get("id")) if isinstance(data, dict) else None


def _remote(resource: Mapping[str, Any], keep: bool) -> dict[str, Any] | None:
    if not keep:
        return None
    attributes = {key: value for key, value in _attributes(resource).items() if key not in _SECRET_ATTRIBUTES}
    return {**resource, "attributes": attributes}


def user_status(attributes: Mapping[str, Any]) -> str:
    """`disabled` wins; a person who never activated the account is invited; otherwise active."""
    if attributes.get("disabled") is True:
        return "inactive"
    if not attributes.get("activated_at"):
        return "invited"
    return "active"


def to_user(resource: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    attributes = _attributes(resource)
    first, last = to_str(attributes.get("first_name")), to_str(attributes.get("last_name"))
    return {
        "id": str(resource["id"]),
        "name": to_str(attributes.get("full_name")) or to_str(attributes.get("name")) or full_name(first, last),
        "first_name": first,
        "last_name": last,
        "username": None,  # Northpass has no user name; sso_uid exists only where SSO is used
        "emails": primary_emails(to_str(attributes.get("email"))),
        "status": user_status(attributes),
        "role": "learner",  # /people lists the school's learners; admins are not people here
        "locale": None,
        "timezone": None,
        "job_title": None,
        "last_login_at": None,
        "created_at": iso_to_iso(attributes.get("created_at")),
        "updated_at": iso_to_iso(attributes.get("updated_at")),
        "custom_fields": {},
        "remote_data": _remote(resource, keep_raw),
    }


def to_course(resource: Mapping[str, Any], keep_raw: bool = False) -> dict[str, Any]:
    attributes = _attributes(resource)
    image = to_str(attributes.get("list_image_url"))
    return {
        "id": str(resource["id"]),
        "title": to_str(attributes.get("name")),
        "description": to_str(attributes.get("full_description")),
        "code": None,
        "type": "course",  # /courses lists courses only; learning paths are another resource
        "status": lookup(COURSE_STATUS, attributes.get("status")),
        "language": None,
        "duration_seconds": None,
        "urls": [{"url": image, "type": "image"}] if image else [],
        "categories": [],
        "tags": [],
        "created_at": iso_to_iso(attributes.get("created_at")),
        "updated_at": iso_to_iso(attributes.get("updated_at")),
        "custom_fields": {},
        "remote_data": _remote(resource, keep_raw),
    }


def enrollment_status(progress: Any) -> str:
    """The row's only state is `progress` (0–100): nothing says failed, expired or withdrawn."""
    percent = to_percent(progress)
    if percent is None or percent <= 0:
        return "enrolled"
    return "completed" if percent >= 100 else "in_progress"


def to_course_enrollment(
    resource: Mapping[str, Any],
    course: Mapping[str, Any],
    person: Mapping[str, Any] | None,
    keep_raw: bool = False,
) -> dict[str, Any]:
    """A row of GET /v2/courses/{id}/enrollments; `course` is the slice's course, `person` the /people join."""
    attributes = _attributes(resource)
    user_id = to_str(attributes.get("person_id")) or _related_id(resource, "person")
    course_id = str(course["id"])
    enrolled_at = iso_to_iso(attributes.get("enrolled_at"))
    return {
        # Enrollment ids are only known to be unique per course (compound ids exist in v2): ours is the pair.
        "id": f"{user_id}:{course_id}",
        "user": {
            "id": user_id,
            "name": person["name"] if person else None,
            "emails": person["emails"] if person else [],
        },
        "course": {"id": course_id, "title": course.get("title")},
        "status": enrollment_status(attributes.get("progress")),
        "assigned_at": None,
        "due_at": None,
        "enrolled_at": enrolled_at,
        "started_at": None,
        "last_activity_at": None,
        "completed_at": None,  # not on the row
        "progress_percent": to_percent(attributes.get("progress")),
        "time_spent_seconds": None,
        "score": None,
        "is_mandatory": None,
        "assigned_by": None,
        "attempt_number": None,
        "attempts_count": None,
        "urls": [],
        "created_at": enrolled_at,
        "updated_at": None,  # no modification time on the row and progress moves none (design.md §4)
        "custom_fields": {},
        "remote_data": _remote(resource, keep_raw),
    }

"""The floor: the least a reader of course enrollments can do. `requests` + `orjson`, one request after another, no
framework, no mapping: it fetches the pages the connector fetches for `course_enrollments` and prints each learner
row as one JSON line.

    python bench/floor.py CONFIG.json        (the connector's config: provider_type, base_url and secret)

What a provider's floor asks for mirrors its connector stream (same endpoints, same page size, same paging), so
the connector/floor ratio measures our code and the CDK's, not a different amount of HTTP.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, urlsplit

import orjson
import requests

Write = Callable[[Any], None]


def talentlms(session: requests.Session, base: str, provider: dict[str, Any], write: Write) -> None:
    session.auth = (provider["api_key"], "")
    api = f"{base}/api/v1"
    session.get(f"{api}/siteinfo").raise_for_status()
    users = orjson.loads(session.get(f"{api}/users").content)  # the connector's join table
    courses = orjson.loads(session.get(f"{api}/courses").content)
    session.get(f"{api}/ratelimit").raise_for_status()
    assert isinstance(users, list)
    for course in courses:
        detail = orjson.loads(session.get(f"{api}/courses/id:{course['id']}").content)
        for row in detail.get("users") or []:
            if str(row.get("role") or "learner").lower() != "instructor":
                write(row)


def canvas(session: requests.Session, base: str, provider: dict[str, Any], write: Write) -> None:
    session.headers["Authorization"] = f"Bearer {provider['access_token']}"
    api = f"{base}/api/v1"
    account = orjson.loads(session.get(f"{api}/accounts/self").content)["id"]

    def pages(url: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        response = session.get(url, params={"per_page": 100, **params})
        while True:
            response.raise_for_status()
            yield orjson.loads(response.content)
            following = response.links.get("next")
            if not following:
                return
            response = session.get(following["url"])

    users = [row for page in pages(f"{api}/accounts/{account}/users", {"sort": "id", "order": "asc", "include[]": ["email", "last_login", "time_zone"]}) for row in page]
    assert users
    for page in pages(f"{api}/accounts/{account}/courses", {"include[]": ["public_description"]}):
        for course in page:
            progress = [row for p in pages(f"{api}/courses/{course['id']}/bulk_user_progress", {}) for row in p]
            assert isinstance(progress, list)
            states = ["active", "invited", "creation_pending", "inactive", "completed"]
            for rows in pages(f"{api}/courses/{course['id']}/enrollments", {"type[]": ["StudentEnrollment"], "state[]": states}):
                for row in rows:
                    write(row)


def northpass(session: requests.Session, base: str, provider: dict[str, Any], write: Write) -> None:
    session.headers.update({"X-Api-Key": provider["api_key"], "Accept": "application/json"})
    api = f"{base}/v2"
    spacing, last = 1 / 8, [0.0]  # Northpass allows 10 requests a second; the connector spaces them at 8, and so does this

    def get(url: str, params: dict[str, Any]) -> dict[str, Any]:
        wait = last[0] + spacing - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        last[0] = time.monotonic()
        response = session.get(url, params=params)
        response.raise_for_status()
        return orjson.loads(response.content)

    def resources(url: str) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 100}
        while True:
            body = get(url, params)
            yield from body["data"]
            following = (body.get("links") or {}).get("next")
            if not following:
                return
            params = {"limit": 100, **dict(parse_qsl(urlsplit(following).query))}

    people = list(resources(f"{api}/people"))
    assert isinstance(people, list)
    for course in list(resources(f"{api}/courses")):
        for row in resources(f"{api}/courses/{course['id']}/enrollments"):
            write(row)


FLOORS = {"talentlms": talentlms, "canvas": canvas, "northpass": northpass}


def main(argv: list[str]) -> int:
    with open(argv[0], "rb") as handle:
        provider = orjson.loads(handle.read())["provider"]
    out = sys.stdout.buffer
    newline = b"\n"

    def write(row: Any) -> None:
        out.write(orjson.dumps(row) + newline)

    with requests.Session() as session:
        FLOORS[provider["provider_type"]](session, provider["base_url"].rstrip("/"), provider, write)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

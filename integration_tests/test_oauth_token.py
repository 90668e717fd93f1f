"""The OAuth token request of every provider that uses the shared `OAuth2TokenAuthenticator`, through the real
entrypoint against the fakes: as patient as any other request (issue 17, item 6), and clear when it gives up."""

from __future__ import annotations

import time

import pytest
from airbyte_cdk.models import SyncMode

from integration_tests.fake_lms import start_fake
from integration_tests.harness import catalog, records_by_stream, run_cli, run_read
from source_lms_enrollments.http_policy import MAX_RETRIES

# provider_type -> the token endpoint's path on its fake
TOKEN_PATHS = {"ispring_learn": "/api/v3/token", "docebo": "/oauth2/token"}


@pytest.fixture(params=sorted(TOKEN_PATHS))
def fake(request):
    server = start_fake(request.param, users=12, courses=4, enrollments=20)
    server.token_path = TOKEN_PATHS[request.param]
    yield server
    server.stop()


def token_posts(server) -> int:
    return sum(1 for method, path, _ in server.requests if method == "POST" and path == server.token_path)


def test_max_retries_failures_in_a_row_at_the_token_endpoint_are_waited_out(fake):
    # Every kind of transient failure, MAX_RETRIES (5) in a row: two dropped connections, two 429s, one 503.
    # The old iSpring token request gave up after its fourth try.
    fake.add_fault("drop", count=2, match=fake.token_path)
    fake.add_fault("rate_limit", count=2, match=fake.token_path, retry_after=1)
    fake.add_fault("error", count=MAX_RETRIES - 4, match=fake.token_path, status=503, retry_after=1)
    started = time.monotonic()
    output = run_read(fake.config(), mode=SyncMode.full_refresh, streams=["courses"])
    elapsed = time.monotonic() - started
    assert not output.errors, output.errors
    assert {r["id"] for r in records_by_stream(output)["courses"]} == fake.app.expected_ids()["courses"]
    assert token_posts(fake) == MAX_RETRIES + 1
    # The streams' waits: jitter plus the CDK's second after each drop (>= 1.5 s, >= 2 s), Retry-After + 1 s after each
    # 429 and the 503 (2 s each).
    assert elapsed >= 1.5 + 2 + 3 * 2
    retries = [m.log.message for m in output.logs if f"POST {fake.token_path}" in m.log.message and "retrying in" in m.log.message]
    assert len(retries) == MAX_RETRIES, retries
    assert all(fake.app.config("")["client_secret"] not in line for line in retries)


def test_a_token_endpoint_that_stays_down_is_a_transient_error_naming_it_without_secrets(fake, tmp_path):
    fake.add_fault("error", count=MAX_RETRIES + 1, match=fake.token_path, status=503, retry_after=1)
    config = fake.config()
    result = run_cli(["read"], tmp_path, config=config, catalog_obj=catalog(SyncMode.full_refresh, ["courses"]))
    assert result.returncode != 0
    error = result.errors()[0]
    assert error["failure_type"] == "transient_error"
    assert f"POST {fake.token_path} answered HTTP 503" in error["message"] and f"{MAX_RETRIES + 1} attempts" in error["message"]
    assert token_posts(fake) == MAX_RETRIES + 1
    assert not [p for _, p, _ in fake.requests if p != fake.token_path]  # nothing read without a token
    secret = config["provider"]["client_secret"]
    assert secret not in result.stdout and secret not in result.stderr


def test_a_rejected_client_is_not_retried_and_names_the_fields(fake, tmp_path):
    result = run_cli(["read"], tmp_path, config=fake.bad_config(), catalog_obj=catalog(SyncMode.full_refresh, ["courses"]))
    error = result.errors()[0]
    assert error["failure_type"] == "config_error"
    assert f"POST {fake.token_path} answered HTTP" in error["message"] and "provider.client_secret" in error["message"]
    assert token_posts(fake) == 1


def test_check_gives_up_on_the_token_endpoint_as_quickly_as_on_its_own_call(fake, tmp_path):
    fake.add_fault("error", count=MAX_RETRIES + 1, match=fake.token_path, status=503)
    status = run_cli(["check"], tmp_path, config=fake.config()).connection_status()
    assert status["status"] == "FAILED" and f"POST {fake.token_path} answered HTTP 503" in status["message"]
    assert token_posts(fake) == 2  # one retry, like the check stream's own max_retries=1

"""The shared OAuth2 token authenticator: request shape, renewal ahead of expiry, errors, secrets, threads."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs

import pytest
import requests
import requests_mock as rm
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_lms_enrollments.http_policy import MAX_RETRIES
from source_lms_enrollments.oauth import OAuth2TokenAuthenticator

TOKEN_URL = "https://lms.example.com/api/v3/token"
HINT = "Check provider.client_id and provider.client_secret."


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def authenticator(clock=None, **kwargs) -> OAuth2TokenAuthenticator:
    return OAuth2TokenAuthenticator(TOKEN_URL, "the-client", "the-secret", provider_title="Some LMS", credential_hint=HINT,
                                    clock=clock or Clock(), sleep=lambda _: None, **kwargs)


def tokens(*values, expires_in=1800):
    return [{"json": {"access_token": value, "expires_in": expires_in, "token_type": "bearer"}} for value in values]


def header(auth) -> str:
    request = requests.Request("GET", "https://lms.example.com/users").prepare()
    return auth(request).headers["Authorization"]


def test_client_credentials_form_with_extra_fields_and_headers():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, tokens("tok-A-0123456789"))
        auth = authenticator(extra_body={"scope": "api"}, headers={"Accept": "application/json"})
        assert header(auth) == "Bearer tok-A-0123456789"
        sent = m.request_history[0]
    assert parse_qs(sent.text) == {"grant_type": ["client_credentials"], "client_id": ["the-client"],
                                   "client_secret": ["the-secret"], "scope": ["api"]}
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_password_grant_is_a_grant_type_and_extra_fields():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, tokens("tok-A-0123456789"))
        header(authenticator(grant_type="password", extra_body={"username": "u", "password": "p", "scope": "api"}))
        assert parse_qs(m.request_history[0].text)["grant_type"] == ["password"]
        assert parse_qs(m.request_history[0].text)["username"] == ["u"]


def test_token_is_reused_then_renewed_a_margin_before_expiry():
    clock = Clock()
    with rm.Mocker() as m:
        m.post(TOKEN_URL, tokens("tok-A-0123456789", "tok-B-0123456789"))
        auth = authenticator(clock)
        assert header(auth) == "Bearer tok-A-0123456789"
        clock.now += 1800 - 61  # still more than the 60 s margin left
        assert header(auth) == "Bearer tok-A-0123456789"
        clock.now += 2  # inside the margin: renewed before it expires
        assert header(auth) == "Bearer tok-B-0123456789"
        assert m.call_count == 2 and auth.tokens_fetched == 2


def test_a_short_lived_token_is_used_for_half_its_life_not_refetched_every_call():
    clock = Clock()
    with rm.Mocker() as m:
        m.post(TOKEN_URL, tokens("tok-A-0123456789", "tok-B-0123456789", expires_in=10))
        auth = authenticator(clock)
        header(auth)
        clock.now += 4.9
        header(auth)
        assert m.call_count == 1
        clock.now += 0.2
        assert header(auth) == "Bearer tok-B-0123456789"


def test_missing_expires_in_assumes_the_default_lifetime():
    clock = Clock()
    with rm.Mocker() as m:
        m.post(TOKEN_URL, [{"json": {"access_token": "tok-A-0123456789"}}, *tokens("tok-B-0123456789")])
        auth = authenticator(clock, default_expires_in=600)
        header(auth)
        clock.now += 539
        assert header(auth) == "Bearer tok-A-0123456789"
        clock.now += 2
        assert header(auth) == "Bearer tok-B-0123456789"


def test_refresh_forces_a_new_token_and_the_cdk_sees_the_new_header():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, tokens("tok-A-0123456789", "tok-B-0123456789"))
        auth = authenticator()
        assert auth.get_auth_header() == {"Authorization": "Bearer tok-A-0123456789"}
        auth.refresh_and_set_access_token()
        assert auth.get_auth_header() == {"Authorization": "Bearer tok-B-0123456789"}


def test_tokens_are_registered_as_secrets():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, tokens("tok-SECRET-0123456789"))
        header(authenticator())
    assert "tok-SECRET-0123456789" not in filter_secrets("Bearer tok-SECRET-0123456789")


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_rejected_client_is_a_config_error_with_the_providers_words_and_the_fields(status):
    with rm.Mocker() as m:
        m.post(TOKEN_URL, status_code=status, json={"error": "invalid_client", "error_description": "Client authentication failed"})
        with pytest.raises(AirbyteTracedException) as raised:
            header(authenticator())
        assert m.call_count == 1  # not retried
    error = raised.value
    assert error.failure_type.value == "config_error"
    assert error.message == (f"Some LMS rejected the token request (POST /api/v3/token answered HTTP {status}: invalid_client: "
                             f"Client authentication failed). {HINT}")


def test_a_wrong_host_is_a_config_error_naming_base_url():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, status_code=404, text="Not found")
        with pytest.raises(AirbyteTracedException) as raised:
            header(authenticator())
    assert raised.value.failure_type.value == "config_error" and "provider.base_url" in raised.value.message


def test_server_errors_and_rate_limits_are_retried_waiting_retry_after_plus_the_cdks_second():
    waits = []
    with rm.Mocker() as m:
        m.post(TOKEN_URL, [{"status_code": 503, "headers": {"Retry-After": "3"}}, {"status_code": 429, "headers": {"Retry-After": "7"}},
                           {"status_code": 408, "headers": {"Retry-After": "2"}}, *tokens("tok-A-0123456789")])
        auth = OAuth2TokenAuthenticator(TOKEN_URL, "c", "s", provider_title="Some LMS", credential_hint=HINT, sleep=waits.append)
        assert header(auth) == "Bearer tok-A-0123456789"
    assert waits == [4.0, 8.0, 3.0]  # as a stream request waits: Retry-After + 1 s (cdk-notes.md §2)


def test_the_token_request_is_as_patient_as_any_request_max_retries_then_a_transient_error(caplog):
    # Five failures in a row are retried (the stream requests' MAX_RETRIES); the sixth try gets the token.
    waits = []
    caplog.set_level("INFO", logger="airbyte")
    with rm.Mocker() as m:
        m.post(TOKEN_URL, [*[{"status_code": 503}] * MAX_RETRIES, *tokens("tok-A-0123456789")])
        auth = OAuth2TokenAuthenticator(TOKEN_URL, "c", "the-secret", provider_title="Some LMS", credential_hint=HINT, sleep=waits.append)
        assert header(auth) == "Bearer tok-A-0123456789"
        assert m.call_count == MAX_RETRIES + 1
    # No Retry-After: exponential with jitter, each wait in [1/2, 1] x 2^(n-1) s, plus the CDK's second.
    assert len(waits) == MAX_RETRIES
    for n, wait in enumerate(waits, start=1):
        assert 2 ** (n - 1) / 2 + 1 <= wait <= 2 ** (n - 1) + 1, waits
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == MAX_RETRIES and retries[0].startswith("Some LMS POST /api/v3/token answered HTTP 503; retrying in")
    assert not [line for line in retries if "the-secret" in line]  # the form is never logged

    with rm.Mocker() as m:
        m.post(TOKEN_URL, [{"status_code": 503, "json": {"error": "temporarily_unavailable"}}] * (MAX_RETRIES + 1))
        with pytest.raises(AirbyteTracedException) as raised:
            header(authenticator())
        assert m.call_count == MAX_RETRIES + 1
    error = raised.value
    assert error.failure_type.value == "transient_error"
    assert error.message.startswith("Some LMS POST /api/v3/token answered HTTP 503: temporarily_unavailable, 6 attempts")
    assert "the-secret" not in error.message


@pytest.mark.parametrize("failure", [requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout,
                                     requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError])
def test_timeouts_and_dropped_connections_are_retried_then_a_transient_error(failure):
    with rm.Mocker() as m:
        m.post(TOKEN_URL, exc=failure)
        with pytest.raises(AirbyteTracedException) as raised:
            header(authenticator(max_retries=2))
        assert m.call_count == 3
    assert raised.value.failure_type.value == "transient_error" and "POST /api/v3/token" in raised.value.message
    assert failure.__name__ in raised.value.message


def test_an_absurd_retry_after_is_a_transient_error_at_once():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, status_code=429, headers={"Retry-After": "86400"})
        with pytest.raises(AirbyteTracedException) as raised:
            header(authenticator())
        assert m.call_count == 1
    assert raised.value.failure_type.value == "transient_error" and "/api/v3/token" in raised.value.message


def test_retries_stop_at_the_streams_total_retry_time():
    clock = Clock()
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock.now += seconds

    with rm.Mocker() as m:
        m.post(TOKEN_URL, status_code=503, headers={"Retry-After": "400"})
        auth = OAuth2TokenAuthenticator(TOKEN_URL, "c", "s", provider_title="Some LMS", credential_hint=HINT, clock=clock, sleep=sleep)
        with pytest.raises(AirbyteTracedException) as raised:
            header(auth)
    assert slept == [401.0] and m.call_count == 2  # a second 401 s wait would pass MAX_RETRY_TIME (600 s)
    assert raised.value.failure_type.value == "transient_error" and "2 attempts" in raised.value.message


def test_a_rejection_hint_names_the_fields_per_error_code_and_falls_back_to_the_general_hint():
    def hint(response):
        return "Check provider.username and provider.password." if response.json().get("error") == "invalid_grant" else None

    for body, expected in (({"error": "invalid_grant"}, "Check provider.username and provider.password."), ({"error": "invalid_client"}, HINT)):
        with rm.Mocker() as m:
            m.post(TOKEN_URL, status_code=400, json=body)
            with pytest.raises(AirbyteTracedException) as raised:
                header(authenticator(rejection_hint=hint))
        assert raised.value.failure_type.value == "config_error" and raised.value.message.endswith(expected)


def test_expires_in_zero_is_a_token_used_once_and_renewed():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, [*tokens("tok-A-0123456789", expires_in=0), *tokens("tok-B-0123456789")])
        auth = authenticator()
        assert header(auth) == "Bearer tok-A-0123456789"
        assert header(auth) == "Bearer tok-B-0123456789"
        assert header(auth) == "Bearer tok-B-0123456789"


def test_an_answer_without_a_token_is_a_system_error():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, text="<html>login page</html>")
        with pytest.raises(AirbyteTracedException) as raised:
            header(authenticator())
    assert raised.value.failure_type.value == "system_error" and "could not be read" in raised.value.message


def test_concurrent_first_calls_fetch_one_token():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, tokens(*(f"tok-{n}-0123456789" for n in range(10))))
        auth = authenticator()
        seen, barrier = [], threading.Barrier(8)

        def call():
            barrier.wait()
            seen.append(header(auth))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert m.call_count == 1
    assert set(seen) == {"Bearer tok-0-0123456789"}

"""The shared HTTP policy: classification with actionable messages, Retry-After, bounded waits."""

import logging

import pytest
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_lms_enrollments.http_policy import LmsErrorHandler, RateLimitResetBackoff, RetryAfterBackoff, endpoint_of


def response(status: int, url: str = "https://lms.example.com/api/v1/users?token=SECRET", headers=None, body=b"") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.url = url
    r.headers.update(headers or {})
    r._content = body
    r.request = requests.Request("GET", url).prepare()
    return r


def handler(**kwargs):
    return LmsErrorHandler(logging.getLogger("test"), "Acme LMS", "Check provider.api_key.", lambda r: r.text or None, **kwargs)


def test_endpoint_never_carries_the_query():
    assert endpoint_of("https://lms.example.com/api/v1/users?token=SECRET") == "/api/v1/users"


@pytest.mark.parametrize(
    "status, action, failure",
    [
        (401, ResponseAction.FAIL, FailureType.config_error),
        (403, ResponseAction.FAIL, FailureType.config_error),
        (429, ResponseAction.RATE_LIMITED, FailureType.transient_error),
        (500, ResponseAction.RETRY, FailureType.transient_error),
        (503, ResponseAction.RETRY, FailureType.transient_error),
        (400, ResponseAction.FAIL, FailureType.system_error),
        (404, ResponseAction.FAIL, FailureType.system_error),
        (422, ResponseAction.FAIL, FailureType.system_error),
    ],
)
def test_statuses(status, action, failure):
    resolution = handler().interpret_response(response(status, body=b"nope"))
    assert (resolution.response_action, resolution.failure_type) == (action, failure)
    assert "Acme LMS GET /api/v1/users" in resolution.error_message and "SECRET" not in resolution.error_message


def test_401_names_what_the_provider_said_and_the_field():
    message = handler().interpret_response(response(401, body=b"Invalid API key")).error_message
    assert "HTTP 401: Invalid API key" in message and "provider.api_key" in message


def test_404_of_a_child_is_ignored_when_asked():
    assert handler(ignore_not_found=True).interpret_response(response(404)).response_action == ResponseAction.IGNORE


def test_401_refreshes_an_oauth_token_when_asked():
    assert handler(refresh_on_401=True).interpret_response(response(401)).response_action == ResponseAction.REFRESH_TOKEN_THEN_RETRY


@pytest.mark.parametrize("error", [requests.exceptions.ReadTimeout(), requests.exceptions.ConnectionError(), requests.exceptions.ConnectTimeout(), requests.exceptions.ChunkedEncodingError()])
def test_timeouts_and_dropped_connections_are_retried_as_transient(error):
    error.request = requests.Request("GET", "https://lms.example.com/api/v1/courses?x=1").prepare()
    resolution = handler().interpret_response(error)
    assert (resolution.response_action, resolution.failure_type) == (ResponseAction.RETRY, FailureType.transient_error)
    assert "/api/v1/courses" in resolution.error_message


def test_retry_after_seconds_and_http_date():
    backoff = RetryAfterBackoff("Acme LMS")
    assert backoff.backoff_time(response(429, headers={"Retry-After": "7"}), 1) == 7.0
    assert backoff.backoff_time(response(429), 1) is None  # exponential
    assert backoff.backoff_time(requests.exceptions.ReadTimeout(), 1) is None
    assert 0 <= backoff.backoff_time(response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), 1) <= 1


def test_an_absurd_wait_ends_as_a_transient_error_naming_the_endpoint():
    with pytest.raises(AirbyteTracedException) as raised:
        RetryAfterBackoff("Acme LMS", max_wait=60).backoff_time(response(429, headers={"Retry-After": "3600"}), 1)
    assert raised.value.failure_type == FailureType.transient_error
    assert "/api/v1/users" in raised.value.message and "SECRET" not in raised.value.message


def test_a_provider_rule_is_checked_before_the_shared_rules_and_only_where_it_answers():
    def throttle_rule(r):
        if r.status_code == 403 and b"Rate Limit" in r.content:
            return ErrorResolution(ResponseAction.RATE_LIMITED, FailureType.transient_error, "Throttled.")
        return None

    special = handler(provider_rule=throttle_rule)
    throttled = special.interpret_response(response(403, body=b"403 Forbidden (Rate Limit Exceeded)\n"))
    assert (throttled.response_action, throttled.failure_type) == (ResponseAction.RATE_LIMITED, FailureType.transient_error)
    assert "/api/v1/users" in throttled.error_message and "Throttled." in throttled.error_message
    denied = special.interpret_response(response(403, body=b"Forbidden"))
    assert (denied.response_action, denied.failure_type) == (ResponseAction.FAIL, FailureType.config_error)


def test_reset_header_in_seconds_until_the_reset_is_used_on_429_only():
    backoff = RateLimitResetBackoff("Truto", "ratelimit-reset", epoch=False)
    assert backoff.backoff_time(response(429, headers={"ratelimit-reset": "7"}), 1) == 7.0
    assert backoff.backoff_time(response(503, headers={"ratelimit-reset": "7"}), 1) is None
    assert backoff.backoff_time(response(429, headers={"ratelimit-reset": "soon"}), 1) is None


def test_reset_header_as_an_epoch_instant_and_an_absurd_wait_ends_clearly():
    import time

    backoff = RateLimitResetBackoff("Bindbee", "X-RateLimit-Reset", epoch=True)
    wait = backoff.backoff_time(response(429, headers={"X-RateLimit-Reset": str(int(time.time()) + 30)}), 1)
    assert 28 <= wait <= 30
    assert backoff.backoff_time(response(429, headers={"X-RateLimit-Reset": str(int(time.time()) - 5)}), 1) == 0.0
    with pytest.raises(AirbyteTracedException) as raised:
        backoff.backoff_time(response(429, headers={"X-RateLimit-Reset": str(int(time.time()) + 7200)}), 1)
    assert raised.value.failure_type == FailureType.transient_error and "Bindbee" in raised.value.message

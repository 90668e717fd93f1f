"""Config errors name the field and never echo a value (issue 16): `validate_config`, and the CDK log wording."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.exceptions import UserDefinedBackoffException
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_lms_enrollments.http_policy import CdkLogWording
from source_lms_enrollments.providers import PROVIDERS
from source_lms_enrollments.source import validate_config

SECRET = "tlmsS3cr3tValueThatMustNeverBePrinted"
TALENTLMS = {"provider_type": "talentlms", "base_url": "https://acme.talentlms.com", "api_key": SECRET}


def misspelt(field: str) -> str:
    """The field with its last two letters swapped: api_key -> api_kye, token -> toekn."""
    return field[:-2] + field[-1] + field[-2]


def secret_fields(provider_type: str) -> list[str]:
    entry = PROVIDERS[provider_type].spec_entry()
    return [name for name, schema in entry["properties"].items() if schema.get("airbyte_secret")]


def valid_provider(provider_type: str) -> dict[str, str]:
    """Every field of the provider's spec entry filled in with a value that fits it."""
    entry = PROVIDERS[provider_type].spec_entry()
    provider = {"provider_type": provider_type, "base_url": "https://lms.example.com"}
    for name, schema in entry["properties"].items():
        if name not in provider:
            kind = schema.get("type")
            provider[name] = (f"{SECRET}-{name}" if schema.get("airbyte_secret") else
                              {"array": [], "integer": 1, "boolean": False}.get(kind, "1"))
    return provider


def error_of(config) -> str:
    with pytest.raises(AirbyteTracedException) as raised:
        validate_config(config)
    assert raised.value.failure_type == FailureType.config_error
    return raised.value.message


def warnings_of(config) -> list[str]:
    said: list[str] = []
    validate_config(config, warn=said.append)
    return said


def test_a_valid_config_passes_without_warnings():
    assert warnings_of({"provider": TALENTLMS, "start_date": "2024-01-01T00:00:00Z"}) == []


@pytest.mark.parametrize("provider_type", sorted(PROVIDERS))
def test_every_providers_full_config_passes(provider_type):
    assert warnings_of({"provider": valid_provider(provider_type)}) == []


@pytest.mark.parametrize("provider_type, field", [(p, f) for p in sorted(PROVIDERS) for f in secret_fields(p)])
def test_a_misspelt_secret_field_is_named_and_its_value_never_printed(provider_type, field):
    provider = valid_provider(provider_type)
    value = provider.pop(field)
    provider[misspelt(field)] = value
    if field in PROVIDERS[provider_type].spec_entry()["required"]:
        message = error_of({"provider": provider})
        assert f"provider.{field}" in message and f"provider.{misspelt(field)}" in message, message
        said = [message]
    else:  # an optional secret (Docebo's password): the config is valid, the stray field a warning
        said = warnings_of({"provider": provider})
        assert any(f"did you mean {field}?" in line for line in said), said
    assert not any(SECRET in line for line in said), said


@pytest.mark.parametrize("field", ["provider_type", "base_url", "api_key"])
def test_a_missing_field_is_named(field):
    provider = {key: value for key, value in TALENTLMS.items() if key != field}
    message = error_of({"provider": provider})
    assert f"provider.{field}" in message and ("missing" in message or "required" in message), message
    assert SECRET not in message
    if field == "provider_type":
        assert all(name in message for name in PROVIDERS), message


def test_a_missing_provider_lists_the_provider_types():
    message = error_of({"start_date": "2024-01-01"})
    assert message.startswith("provider is missing") and all(name in message for name in PROVIDERS), message


def test_an_unknown_provider_type_suggests_the_closest_and_lists_them_all():
    message = error_of({"provider": {**TALENTLMS, "provider_type": "talentlm"}})
    assert "did you mean talentlms?" in message and all(name in message for name in PROVIDERS), message
    assert "talentlm " not in message and "'talentlm'" not in message and SECRET not in message


def test_an_unknown_top_level_field_is_a_warning_with_a_suggestion():
    said = warnings_of({"provider": TALENTLMS, "start_dat": "2024-01-01"})
    assert len(said) == 1 and "start_dat" in said[0] and "did you mean start_date?" in said[0], said
    assert "2024-01-01" not in said[0]


def test_an_unknown_provider_field_is_a_warning_with_a_suggestion_and_no_value():
    said = warnings_of({"provider": {**TALENTLMS, "bas_url": SECRET}})
    assert len(said) == 1 and "provider.bas_url" in said[0] and "did you mean base_url?" in said[0], said
    assert SECRET not in said[0]


def test_a_bad_start_date_says_the_expected_format_not_the_pattern_nor_the_value():
    message = error_of({"provider": TALENTLMS, "start_date": "01/02/2024 SECRETISH"})
    assert "start_date" in message and "2024-01-01T00:00:00Z" in message, message
    assert "SECRETISH" not in message and "\\d" not in message and "^" not in message


@pytest.mark.parametrize("field, value, says", [
    ("requests_per_minute", "SECRETISH", "requests_per_minute must be a whole number"),
    ("max_concurrency", 50, "max_concurrency must be at most 10"),
    ("request_timeout_seconds", 0, "request_timeout_seconds must be at least 1"),
    ("include_remote_data", "SECRETISH", "include_remote_data must be true or false"),
])
def test_a_wrong_value_names_the_field_and_the_rule_never_the_value(field, value, says):
    message = error_of({"provider": TALENTLMS, field: value})
    assert says in message and "SECRETISH" not in message and SECRET not in message, message


def test_a_provider_field_of_the_wrong_type_is_named_without_its_value():
    message = error_of({"provider": {**TALENTLMS, "base_url": ["https://acme.talentlms.com", SECRET]}})
    assert "provider.base_url must be a string" in message and SECRET not in message, message


def test_a_config_that_is_not_an_object_is_refused():
    assert "JSON object" in error_of(["provider"])


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("airbyte", logging.INFO, __file__, 1, message, (), None)


def test_cdk_retry_line_says_what_happened_not_rate_limit():
    request = requests.Request("GET", "http://127.0.0.1:9/api/v1/users").prepare()
    record = _record("UserDefinedBackoffException: Rate limit exceeded. Retrying in 1.5041435435680015 seconds.")
    try:
        raise UserDefinedBackoffException(
            backoff=1.5, request=request, response=requests.ConnectionError("refused"),
            error_message="TalentLMS GET /api/v1/users could not be reached or dropped the connection (ConnectionError).")
    except UserDefinedBackoffException:
        assert CdkLogWording().filter(record) is True
    assert record.getMessage() == ("TalentLMS GET /api/v1/users could not be reached or dropped the connection "
                                   "(ConnectionError). Retrying in 1.5 s.")


@pytest.mark.parametrize("message", [
    "MemoryMonitor instantiated with critical threshold: 90%, anon share of usage threshold: 85%",
    "Retries exhausted with backoff exception.",
    "'GET' request to 'http://127.0.0.1:9/api/v1/users' failed with status code '401' and error message: 'x'. "
    "Response (headers): '{}'.",
])
def test_cdk_lines_said_again_by_the_error_are_dropped(message):
    assert CdkLogWording().filter(_record(message)) is False


def test_other_lines_pass_unchanged():
    record = _record("Marking stream users as STARTED")
    assert CdkLogWording().filter(record) is True and record.getMessage() == "Marking stream users as STARTED"


EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "config-examples"


@pytest.mark.parametrize("provider_type", sorted(PROVIDERS))
def test_every_provider_has_an_example_config_that_fits_the_spec(provider_type):
    """The README's "Point it at your own LMS" copies these: one per provider, valid once filled in."""
    config = json.loads((EXAMPLES / f"{provider_type}.json").read_text())
    assert config["provider"]["provider_type"] == provider_type
    assert warnings_of(config) == []
    required = PROVIDERS[provider_type].spec_entry()["required"]
    assert all(field in config["provider"] for field in required)

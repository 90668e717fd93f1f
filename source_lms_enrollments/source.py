"""The connector: one AbstractSource whose spec, check and streams come from the chosen provider."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from jsonschema import Draft7Validator

from airbyte_cdk.models import AirbyteMessage, AirbyteStateMessage, ConfiguredAirbyteCatalog, ConnectorSpecification
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream

from .base import LmsProvider, config_error
from .providers import PROVIDERS

DOCUMENTATION_URL = "https://github.com/source-lms-enrollments/source-lms-enrollments#readme"
# AbstractSource.read ends a sync in which streams failed with one more error: this header, then one line per stream
# with the repr of its exception (the CDK's dump of the request and response, headers included).
CDK_FAILED_STREAMS = "During the sync, the following streams did not sync successfully"
_FAILED_STREAM_LINE = re.compile(r"(?:^|successfully: )([A-Za-z0-9_]+): [A-Za-z_]+\(", re.MULTILINE)


def connection_specification() -> dict[str, Any]:
    """design.md §3: `provider` is a oneOf keyed by the const `provider_type`, one entry per registered provider."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "LMS Enrollments Spec",
        "type": "object",
        "required": ["provider"],
        "additionalProperties": True,
        "properties": {
            "provider": {
                "title": "LMS provider",
                "description": "The learning management system (or unified LMS API) to read from, and its credentials.",
                "type": "object",
                "order": 0,
                "oneOf": [provider.spec_entry() for provider in PROVIDERS.values()],
            },
            "start_date": {
                "title": "Start date",
                "description": "ISO 8601, UTC. On the first incremental sync, records whose updated_at is earlier are skipped. Leave empty to read everything.",
                "type": "string",
                "format": "date-time",
                "pattern": r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$",
                "examples": ["2024-01-01T00:00:00Z"],
                "order": 1,
            },
            "include_remote_data": {
                "title": "Include remote data",
                "description": "Put the provider's raw payload of each record in its remote_data field (secrets and auto-login links removed).",
                "type": "boolean",
                "default": False,
                "order": 2,
            },
            "requests_per_minute": {
                "title": "Request-rate cap (requests per minute)",
                "description": "At most this many requests a minute to the provider, across all streams and threads, to leave quota for other integrations. Empty: no cap beyond the provider's own limits.",
                "type": "integer",
                "minimum": 1,
                "order": 3,
            },
            "max_concurrency": {
                "title": "Concurrent requests",
                "description": "How many parent items (e.g. courses) are read at once where a provider needs one request per item. Default: the provider's safe value (see its page); 1 reads them one after another.",
                "type": "integer",
                "minimum": 1,
                "maximum": 10,
                "order": 5,
            },
            "deletion_sweep_days": {
                "title": "Deletion sweep (days)",
                "description": "Streams that the provider filters by modification time on its server list everything once in this many days, to find what was deleted (see the provider's page for which streams and what it costs). 0: every sync.",
                "type": "integer",
                "minimum": 0,
                "default": 7,
                "order": 6,
            },
            "request_timeout_seconds": {
                "title": "Read timeout (seconds)",
                "description": "How long to wait for one answer before retrying it.",
                "type": "integer",
                "minimum": 1,
                "maximum": 900,
                "default": 120,
                "order": 4,
            },
        },
    }


def closest(name: Any, candidates: Iterable[str]) -> str | None:
    """The candidate a mistyped name most resembles (difflib), or None."""
    if not isinstance(name, str):
        return None
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(name: Any, candidates: Iterable[str]) -> str:
    match = closest(name, candidates)
    return f" (did you mean {match}?)" if match else ""


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


_JSON_TYPES = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "object": "an object", "array": "a list"}


def _describe(error: Any) -> str:
    """One JSON-schema violation, by field and rule: never the value (a mistyped secret may be the value)."""
    field = ".".join(str(part) for part in error.absolute_path) or "the config"
    schema, rule, limit = error.schema, error.validator, error.validator_value
    if rule in ("pattern", "format"):
        examples = schema.get("examples")
        return f"{field} has the wrong format" + (f": expected e.g. {examples[0]}" if examples else "")
    if rule == "type":
        kinds = limit if isinstance(limit, list) else [limit]
        return f"{field} must be " + " or ".join(_JSON_TYPES.get(kind, kind) for kind in kinds)
    if rule == "minimum":
        return f"{field} must be at least {limit}"
    if rule == "maximum":
        return f"{field} must be at most {limit}"
    if rule == "enum":
        return f"{field} must be one of {', '.join(map(str, limit))}"
    return f"{field} is not valid ({rule})"


def validate_config(config: Any, warn: Callable[[str], None] = lambda _: None) -> None:
    """Check a config against the spec before anything else reads it: `warn` what is ignored, raise a config_error.

    Every message names fields, never values: the CDK's and PyAirbyte's own JSON-schema errors print the offending
    object whole, and a misspelt secret field ("api_kye") is not a spec secret, so nothing would mask it.
    """
    if not isinstance(config, Mapping):
        raise config_error('The config must be one JSON object like {"provider": {"provider_type": ..., ...}}.')
    spec = connection_specification()
    top_fields = spec["properties"]
    types = ", ".join(PROVIDERS)
    for key in config:
        if key not in top_fields and not str(key).startswith("__"):  # "__" keys are the CDK's own (split_config)
            warn(f"Unknown config field {key}{_did_you_mean(key, top_fields)}: it is ignored. Fields: {', '.join(top_fields)}.")
    provider = config.get("provider")
    if provider is None:
        raise config_error(f"provider is missing: an object with provider_type (one of {types}) and that provider's fields.")
    if not isinstance(provider, Mapping):
        raise config_error(f"provider must be an object with provider_type (one of {types}) and that provider's fields.")
    provider_type = provider.get("provider_type")
    if _blank(provider_type):
        raise config_error(f"provider.provider_type is missing: one of {types}.")
    provider_cls = PROVIDERS.get(provider_type) if isinstance(provider_type, str) else None
    if provider_cls is None:
        raise config_error(f"provider.provider_type is not a known provider type{_did_you_mean(provider_type, PROVIDERS)}. "
                           f"Provider types: {types}.")
    entry = provider_cls.spec_entry()
    fields = list(entry["properties"])
    unknown = [key for key in provider if key not in fields]
    missing = [field for field in entry["required"] if _blank(provider.get(field))]
    if missing:
        named = []
        for field in missing:
            typo = next((key for key in unknown if closest(key, [field])), None)
            named.append(f"provider.{field}" + (f" (the config has provider.{typo}: misspelt?)" if typo else ""))
        raise config_error(f"{', '.join(named)} {'is' if len(missing) == 1 else 'are'} required for {provider_cls.title} "
                           f"(provider_type {provider_cls.provider_type}). Its fields: {', '.join(fields)}.")
    for key in unknown:
        warn(f"provider.{key} is not a {provider_cls.title} field{_did_you_mean(key, fields)}: it is ignored. "
             f"Its fields: {', '.join(fields)}.")
    # Types, formats and ranges by the spec's own schema, with `provider` narrowed to the chosen entry (a failed
    # oneOf says nothing but "not valid under any of the given schemas").
    schema = {**spec, "properties": {**top_fields, "provider": entry}}
    errors = sorted(Draft7Validator(schema).iter_errors(dict(config)), key=lambda error: [str(p) for p in error.absolute_path])
    if errors:
        raise config_error("; ".join(_describe(error) for error in errors[:5]) + ".")


def provider_for(config: Mapping[str, Any]) -> LmsProvider:
    provider = config.get("provider")
    provider_type = provider.get("provider_type") if isinstance(provider, Mapping) else None
    provider_cls = PROVIDERS.get(provider_type) if isinstance(provider_type, str) else None
    if provider_cls is None:
        known = ", ".join(PROVIDERS)
        raise config_error(f"provider.provider_type must be one of {known}{_did_you_mean(provider_type, PROVIDERS)}.")
    return provider_cls(config)


class SourceLmsEnrollments(AbstractSource):
    # The CDK's own check against the spec prints the offending object whole, secrets included when a secret field
    # is misspelt: `validate_config` runs instead, in check, discover and read (run.py's entrypoint runs it before
    # the CDK's check-time validation too).
    check_config_against_spec = False

    def __init__(self) -> None:
        super().__init__()
        self._validated: set[str] = set()

    def validated(self, config: Mapping[str, Any], logger: logging.Logger | None = None) -> Mapping[str, Any]:
        """`config` once `validate_config` accepts it; its warnings are logged once per config."""
        key = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()  # no secret kept
        if key not in self._validated:
            validate_config(config, warn=(logger or logging.getLogger("airbyte")).warning)
            self._validated.add(key)
        return config

    @staticmethod
    def read_config(config_path: str) -> Mapping[str, Any]:
        # The CDK lets a missing file end in a traceback and calls a non-object a system_error: it is the user's
        # file, so each is a config error naming the file (never its content: it holds secrets).
        try:
            with open(config_path, encoding="utf-8") as file:
                config = json.load(file)
        except OSError as error:
            raise config_error(f"Cannot read the config file {config_path}: {error.strerror}.") from None
        except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
            where = f" at line {error.lineno} column {error.colno}" if isinstance(error, json.JSONDecodeError) else ""
            raise config_error(f"The config file {config_path} is not valid JSON{where}.") from None
        if not isinstance(config, dict):
            raise config_error(f'The config file {config_path} must hold one JSON object like {{"provider": {{...}}}}.')
        return config

    def spec(self, logger: logging.Logger) -> ConnectorSpecification:
        return ConnectorSpecification(
            documentationUrl=DOCUMENTATION_URL,
            connectionSpecification=connection_specification(),
            supportsIncremental=True,
        )

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> tuple[bool, Any]:
        # Failures are raised as config_error AirbyteTracedExceptions, never returned as (False, msg): the CDK
        # prints a returned message without masking secrets (cdk-notes.md §3).
        provider_for(self.validated(config, logger)).check()
        return True, None

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[list[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        try:
            yield from super().read(logger, config, catalog, state)
        except AirbyteTracedException as error:
            message = error.message or ""
            failed = _FAILED_STREAM_LINE.findall(message)
            if not (message.startswith(CDK_FAILED_STREAMS) and failed):
                raise
            # Each stream's own error has been emitted already, with the error handler's message: the last one
            # names the streams instead of repeating them as dumps.
            raise AirbyteTracedException(
                message=f"{len(failed)} stream(s) did not sync: {', '.join(failed)}; each one's error is above.",
                internal_message=error.internal_message or message,
                failure_type=error.failure_type,
            ) from None

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        return provider_for(self.validated(config)).streams()

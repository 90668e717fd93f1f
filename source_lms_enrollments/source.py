"""The connector: one AbstractSource whose spec, check and streams come from the chosen provider."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from airbyte_cdk.models import ConnectorSpecification
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream

from .base import LmsProvider, config_error
from .providers import PROVIDERS

DOCUMENTATION_URL = "https://github.com/source-lms-enrollments/source-lms-enrollments#readme"


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


def provider_for(config: Mapping[str, Any]) -> LmsProvider:
    provider = config.get("provider")
    provider_type = provider.get("provider_type") if isinstance(provider, Mapping) else None
    provider_cls = PROVIDERS.get(provider_type) if isinstance(provider_type, str) else None
    if provider_cls is None:
        known = ", ".join(sorted(PROVIDERS))
        raise config_error(f"provider.provider_type must be one of {known}; got {provider_type!r}.")
    return provider_cls(config)


class SourceLmsEnrollments(AbstractSource):
    @staticmethod
    def read_config(config_path: str) -> Mapping[str, Any]:
        # The CDK raises a plain ValueError (a system_error) for a config file that is not a JSON object: it is
        # the user's file, so say so as a config error.
        try:
            return AbstractSource.read_config(config_path)
        except ValueError as error:
            raise config_error(f"The config file {config_path} must hold one JSON object like {{\"provider\": {{...}}}}: {error}") from None

    def spec(self, logger: logging.Logger) -> ConnectorSpecification:
        return ConnectorSpecification(
            documentationUrl=DOCUMENTATION_URL,
            connectionSpecification=connection_specification(),
            supportsIncremental=True,
        )

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> tuple[bool, Any]:
        # Failures are raised as config_error AirbyteTracedExceptions, never returned as (False, msg): the CDK
        # prints a returned message without masking secrets (cdk-notes.md §3).
        provider_for(config).check()
        return True, None

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        return provider_for(config).streams()

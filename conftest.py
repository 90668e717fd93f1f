import logging

import pytest

# Airbyte's standard-suite hooks (they parametrize `scenario` from acceptance-test-config.yml); pytest allows
# `pytest_plugins` only in the top-level conftest.
pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]


@pytest.fixture(autouse=True)
def _airbyte_logger_kept_as_it_was():
    """PyAirbyte, run in-process by the warehouse and first-hour tests, sets up the `airbyte` logger (the CDK's own) with
    propagate=False and its file handlers: every later test in the same worker would then see none of the connector's
    log lines. Each test leaves that logger as it found it."""
    logger = logging.getLogger("airbyte")
    saved = logger.level, logger.propagate, list(logger.handlers), list(logger.filters)
    yield
    logger.level, logger.propagate = saved[0], saved[1]
    logger.handlers[:], logger.filters[:] = saved[2], saved[3]

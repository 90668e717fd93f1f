# Airbyte's standard-suite hooks (they parametrize `scenario` from acceptance-test-config.yml); pytest allows
# `pytest_plugins` only in the top-level conftest.
pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]

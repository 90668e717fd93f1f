"""Airbyte's own acceptance suite for Python sources, over every provider's fake (acceptance-test-config.yml).

The suite's Docker image tests (marker `image_tests`) need a Docker engine; see conftest in this folder's parent
and README "Tests" for how they run here.
"""

from airbyte_cdk.test.standard_tests import SourceTestSuiteBase

from source_lms_enrollments import SourceLmsEnrollments


class TestSourceLmsEnrollments(SourceTestSuiteBase):
    connector = SourceLmsEnrollments

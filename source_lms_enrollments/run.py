import sys

from airbyte_cdk.entrypoint import launch

from .source import SourceLmsEnrollments


def run() -> None:
    launch(SourceLmsEnrollments(), sys.argv[1:])


if __name__ == "__main__":
    run()

# The connector's image: Airbyte's Python connector base (Debian 12, Python 3.11, user `airbyte`) plus this
# package and its dependencies. Build with `make image`; run as `docker run --rm IMAGE spec`.
# BASE_IMAGE is an argument so that machines that cannot pull from Docker Hub can build against a local stand-in
# (shared/tools/container-check does). Keep it equal to metadata.yaml's connectorBuildOptions.baseImage (a unit
# test checks).
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.1.0@sha256:1d1aa21d34e851df4e8a87b391c27724c06e2597608e7161f4d167be853bd7b6

# The wheel is built in a throwaway stage, so the image holds neither the source tree nor setuptools' build/ and
# *.egg-info leftovers.
FROM ${BASE_IMAGE} AS builder
WORKDIR /build
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" >/requirements.txt
COPY source_lms_enrollments ./source_lms_enrollments
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${BASE_IMAGE}
# Dependencies first, in a layer only a change of the dependency list invalidates (the COPY is cached by content):
# after a source or pyproject.toml edit the image rebuilds in seconds instead of downloading the CDK's dependencies
# again. --no-cache-dir: the base sets PIP_CACHE_DIR, and a cache in a layer is dead weight.
COPY --from=builder /requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=builder /wheels /tmp/wheels
# `spec` once: a package that does not import fails the build, not the first sync.
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && source-lms-enrollments spec >/dev/null

WORKDIR /airbyte/integration_code
USER airbyte
# The Airbyte platform starts a connector through AIRBYTE_ENTRYPOINT; `docker run IMAGE spec` uses ENTRYPOINT.
ENV AIRBYTE_ENTRYPOINT="source-lms-enrollments"
ENTRYPOINT ["source-lms-enrollments"]
LABEL io.airbyte.name="airbyte/source-lms-enrollments" io.airbyte.version="0.1.0"

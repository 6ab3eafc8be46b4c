# syntax=docker/dockerfile:1
# runstream's services from one image: the command picks which.
#
#   docker run IMAGE query          the query service (port 8080)
#   docker run IMAGE ingest         an ingest worker (metrics and /ready on 9100)
#   docker run IMAGE migrate        apply pending schema migrations, then exit (a Job, a compose one-shot)
#   docker run IMAGE gc-artifacts   collect unreferenced artifacts (a CronJob)
#
# Reproducible: the base image is an exact release (pin its digest too where your registry
# mirror allows: --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:...), and every
# dependency is installed from deploy/requirements.lock - exact versions with their SHA-256
# hashes (pip --require-hashes), generated from pyproject.toml by `make lock`.
# The services run as the unprivileged user 10001 (numeric, so Kubernetes' runAsNonRoot can
# check it), which owns its only writable places: /data/artifacts (the local artifact store,
# a volume) and /data/home (RUNSTREAM_HOME). The code is byte-compiled at build time so the
# root filesystem can be mounted read-only.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/runstream
COPY deploy/requirements.lock /tmp/requirements.lock
RUN /opt/runstream/bin/pip install --require-hashes --no-deps --only-binary=:all: -r /tmp/requirements.lock

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="runstream" \
      org.opencontainers.image.description="runstream's query service, ingest worker and migrations"
RUN groupadd --system --gid 10001 runstream \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data/home --no-create-home --shell /usr/sbin/nologin runstream \
 && mkdir -p /data/artifacts /data/home \
 && chown -R 10001:10001 /data \
 && chmod 0700 /data/home /data/artifacts
COPY --from=deps /opt/runstream /opt/runstream
WORKDIR /app
COPY runstream ./runstream
COPY producer ./producer
COPY ingest ./ingest
COPY query ./query
COPY ops ./ops
RUN /opt/runstream/bin/python -m compileall -q /app \
 && printf '#!/bin/sh\nexec /opt/runstream/bin/python -m ops.cli "$@"\n' > /usr/local/bin/runstream \
 && chmod 0755 /usr/local/bin/runstream
ENV PATH=/opt/runstream/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RUNSTREAM_HOME=/data/home \
    RUNSTREAM_ARTIFACTS_DIR=/data/artifacts \
    RUNSTREAM_QUERY_HOST=0.0.0.0 \
    RUNSTREAM_QUERY_PORT=8080 \
    RUNSTREAM_INGEST_METRICS_HOST=0.0.0.0 \
    RUNSTREAM_INGEST_METRICS_PORT=9100
# A local artifact store lives here; it is a named volume in docker-compose.yml, which Docker
# fills from this directory on first use, so it keeps the runstream user as its owner.
VOLUME ["/data/artifacts"]
EXPOSE 8080 9100
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["runstream", "healthcheck"]
ENTRYPOINT ["runstream"]
CMD ["query"]

# S3 where MinIO cannot be had: moto's server (the same release as the tests' S3, requirements-dev.txt)
# on port 9000, as MinIO's. moto keeps its objects in memory; infra/docker/debian/s3-server.sh records
# every request to the /data volume and replays them at start, so objects outlive a restart.
# Built by make images (BASE=debian-local) on the Debian-made base.
ARG BASE=mlops-python:3.11-bookworm
FROM ${BASE}
COPY requirements.txt requirements-dev.txt /tmp/
RUN --mount=type=secret,id=pip-ca --mount=type=bind,source=infra/docker/wheels,target=/wheels \
    --mount=type=bind,source=infra/docker/pip-install.sh,target=/usr/local/bin/pip-install \
    pip-install /opt/venv -c /tmp/requirements.txt "$(grep '^moto\[server\]==' /tmp/requirements-dev.txt)"
COPY infra/docker/debian/s3-server.sh /usr/local/bin/s3-server
RUN useradd --uid 10001 --create-home s3 && mkdir -p /data && chown s3 /data
USER 10001
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 MOTO_ENABLE_RECORDING=true MOTO_RECORDER_FILEPATH=/data/requests.jsonl
EXPOSE 9000
HEALTHCHECK --interval=5s --timeout=5s --retries=60 CMD ["test", "-f", "/tmp/s3-ready"]
ENTRYPOINT ["/usr/local/bin/s3-server"]

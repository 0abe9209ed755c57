# The MLflow tracking server and model registry: PostgreSQL backend, S3 (MinIO) artifacts, proxied,
# logins required (MLflow's basic-auth app, started by infra/compose/mlflow-server.sh).
# Build from the repository root: infra/docker/images.sh mlflow (or docker build -f infra/docker/mlflow.Dockerfile .).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
COPY requirements.txt /tmp/requirements.txt
# The same pins as the platform (constraints), only what the server needs.
RUN --mount=type=secret,id=pip-ca --mount=type=bind,source=infra/docker/wheels,target=/wheels \
    --mount=type=bind,source=infra/docker/pip-install.sh,target=/usr/local/bin/pip-install \
    pip-install /opt/venv -c /tmp/requirements.txt "mlflow[auth]" "psycopg[binary]" boto3
COPY infra/compose/mlflow-server.sh /usr/local/bin/mlflow-server.sh
RUN useradd --uid 10001 --create-home mlflow
USER 10001
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=5s --retries=30 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:5000/health', timeout=3)"]
ENTRYPOINT ["/usr/local/bin/mlflow-server.sh"]

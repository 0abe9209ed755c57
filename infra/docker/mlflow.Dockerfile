# The MLflow tracking server and model registry: PostgreSQL backend, S3 (MinIO) artifacts, proxied,
# logins required (MLflow's basic-auth app, started by infra/compose/mlflow-server.sh).
# Build from the repository root: docker build -f infra/docker/mlflow.Dockerfile .
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
COPY requirements.txt /tmp/requirements.txt
# The same pins as the platform (constraints), only what the server needs.
RUN pip install -c /tmp/requirements.txt "mlflow[auth]" "psycopg[binary]" boto3
COPY infra/compose/mlflow-server.sh /usr/local/bin/mlflow-server.sh
RUN useradd --uid 10001 --create-home mlflow
USER 10001
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/mlflow-server.sh"]

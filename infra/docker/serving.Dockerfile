# The forecasting service: FastAPI + the model libraries, without Airflow, Great Expectations or
# Evidently (requirements-serving.txt; a test imports the service with those requirements alone).
# Build from the repository root: infra/docker/images.sh serving (or docker build -f infra/docker/serving.Dockerfile .).
# BASE: the official Python image, or the one made from Debian's packages (infra/docker/debian-base.sh).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS build
# CPU torch: the service predicts on CPUs; PyPI's default Linux wheel carries CUDA (several GB).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY requirements-serving.txt /tmp/requirements-serving.txt
RUN --mount=type=secret,id=pip-ca --mount=type=bind,source=infra/docker/wheels,target=/wheels \
    --mount=type=bind,source=infra/docker/pip-install.sh,target=/usr/local/bin/pip-install \
    pip-install /opt/venv -r /tmp/requirements-serving.txt
WORKDIR /src
COPY pyproject.toml README.md ./
# What the service imports (an import-linter contract keeps it so): the base layer, the online-feature
# read, the forecast table, the registry read and the bundle's predict side; nothing of training,
# validation or orchestration.
COPY core core
COPY configs configs
COPY feature_store feature_store
COPY forecast_store forecast_store
COPY model_bundle model_bundle
COPY model_registry model_registry
COPY model_serving model_serving
RUN --mount=type=bind,source=infra/docker/pip-install.sh,target=/usr/local/bin/pip-install \
    pip-install /opt/venv --no-deps --no-build-isolation --no-index .

FROM ${BASE}
COPY --from=build /opt/venv /opt/venv
# The dataset configs travel inside the installed configs package; /app holds the service's local
# state (the generated Feast repo config, the forecast ledger's spool), so it belongs to the service's
# user. The spool's folder exists in the image so that a volume mounted there starts with its owner.
RUN useradd --uid 10001 --create-home forecast && mkdir -p /app/ledger-spool && chown -R forecast /app
USER 10001
WORKDIR /app
ARG CODE_VERSION=unknown
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MLOPS_PROFILE=compose \
    MLOPS_SERVING_HOST=0.0.0.0 \
    MLOPS_SERVING_PORT=8000 \
    MLOPS_FORECAST_LEDGER_SPOOL=/app/ledger-spool \
    MLOPS_CODE_VERSION=$CODE_VERSION
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --retries=10 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8000/health/live', timeout=3)"]
ENTRYPOINT ["python", "-m", "model_serving"]

# Airflow 3 (api-server, scheduler, dag-processor, triggerer) with the project's DAGs, its library and
# the cncf-kubernetes provider: Airflow and every other distribution at the platform's own pins
# (requirements.txt), on the official Python image or the one made from Debian's packages.
# Build from the repository root: infra/docker/images.sh airflow (or docker build -f infra/docker/airflow.Dockerfile .).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
# CPU torch: in compose, training runs in the LocalExecutor's task processes, and on Kubernetes in the
# training image. curl: the API server's healthcheck; libgomp1: XGBoost, LightGBM and torch threads.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN apt-get update && apt-get install -y --no-install-recommends curl libgomp1 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip-ca --mount=type=bind,source=infra/docker/wheels,target=/wheels \
    --mount=type=bind,source=infra/docker/pip-install.sh,target=/usr/local/bin/pip-install \
    pip-install /opt/venv -r /tmp/requirements.txt
# Airflow's own image's user (uid 50000, group root) and home: compose's volumes and Kubernetes'
# security contexts written for that image fit this one.
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home airflow
WORKDIR /opt/airflow/project
COPY --chown=airflow:root pyproject.toml README.md ./
COPY --chown=airflow:root core core
COPY --chown=airflow:root configs configs
COPY --chown=airflow:root data_pipeline data_pipeline
COPY --chown=airflow:root feature_drift feature_drift
COPY --chown=airflow:root feature_store feature_store
COPY --chown=airflow:root forecast_store forecast_store
COPY --chown=airflow:root model_bundle model_bundle
COPY --chown=airflow:root model_registry model_registry
COPY --chown=airflow:root model_training model_training
COPY --chown=airflow:root model_validation model_validation
COPY --chown=airflow:root model_serving model_serving
COPY --chown=airflow:root monitoring monitoring
COPY --chown=airflow:root orchestration orchestration
COPY --chown=airflow:root infra/scripts infra/scripts
COPY --chown=airflow:root infra/compose/airflow_passwords.py infra/compose/airflow_passwords.py
COPY --chown=airflow:root data data
RUN --mount=type=bind,source=infra/docker/pip-install.sh,target=/usr/local/bin/pip-install \
    pip-install /opt/venv --no-deps --no-build-isolation --no-index .
COPY --chown=airflow:root dags /opt/airflow/dags
COPY infra/docker/airflow-entrypoint.sh /usr/local/bin/airflow-entrypoint
# The platform's local state (landing partitions, offline features), the task logs and the login
# file: named volumes in compose, which take these folders' owner when they are first created.
RUN mkdir -p /var/lib/mlops /opt/airflow/logs /opt/airflow/auth \
    && chown airflow:root /var/lib/mlops /opt/airflow/logs /opt/airflow/auth
USER airflow
WORKDIR /opt/airflow
ARG CODE_VERSION=unknown
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 AIRFLOW_HOME=/opt/airflow \
    MLOPS_PROFILE=compose MLOPS_CODE_VERSION=$CODE_VERSION
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/airflow-entrypoint"]
CMD ["--help"]

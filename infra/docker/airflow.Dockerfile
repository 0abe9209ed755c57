# Airflow 3 (api-server, scheduler, dag-processor, triggerer) with the project's DAGs, its library
# and the cncf-kubernetes provider, on the official image.
# Build from the repository root: docker build -f infra/docker/airflow.Dockerfile .
FROM apache/airflow:3.3.2-python3.11
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
# The pins resolve with the image's Airflow 3.3.2; CPU torch: in compose, training runs in the
# LocalExecutor's task processes, and on Kubernetes in the training image.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r /tmp/requirements.txt
COPY --chown=airflow:root pyproject.toml README.md /opt/airflow/project/
COPY --chown=airflow:root core /opt/airflow/project/core
COPY --chown=airflow:root configs /opt/airflow/project/configs
COPY --chown=airflow:root data_pipeline /opt/airflow/project/data_pipeline
COPY --chown=airflow:root feature_drift /opt/airflow/project/feature_drift
COPY --chown=airflow:root feature_store /opt/airflow/project/feature_store
COPY --chown=airflow:root forecast_store /opt/airflow/project/forecast_store
COPY --chown=airflow:root model_bundle /opt/airflow/project/model_bundle
COPY --chown=airflow:root model_registry /opt/airflow/project/model_registry
COPY --chown=airflow:root model_training /opt/airflow/project/model_training
COPY --chown=airflow:root model_validation /opt/airflow/project/model_validation
COPY --chown=airflow:root model_serving /opt/airflow/project/model_serving
COPY --chown=airflow:root monitoring /opt/airflow/project/monitoring
COPY --chown=airflow:root orchestration /opt/airflow/project/orchestration
COPY --chown=airflow:root infra/scripts /opt/airflow/project/infra/scripts
COPY --chown=airflow:root infra/compose/airflow_passwords.py /opt/airflow/project/infra/compose/airflow_passwords.py
COPY --chown=airflow:root data /opt/airflow/project/data
RUN pip install --no-deps --no-build-isolation /opt/airflow/project
COPY --chown=airflow:root dags /opt/airflow/dags
# The platform's local state (landing partitions, offline features): a named volume in compose that
# takes this directory's owner when it is first created.
USER root
RUN mkdir -p /var/lib/mlops && chown airflow:root /var/lib/mlops
USER airflow
ARG CODE_VERSION=unknown
ENV MLOPS_PROFILE=compose MLOPS_CODE_VERSION=$CODE_VERSION

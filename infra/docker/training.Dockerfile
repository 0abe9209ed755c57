# Training and tuning pods (KubernetesPodOperator on the GPU node pool): the training CLI as entrypoint.
# PyPI's Linux torch and xgboost wheels carry CUDA; the node's NVIDIA driver comes in through the
# container runtime. TORCH_INDEX=https://download.pytorch.org/whl/cpu (or a CPU wheel in
# infra/docker/wheels, as make images puts there on a machine that has one) makes a CPU image.
# Build from the repository root: infra/docker/images.sh training (or docker build -f infra/docker/training.Dockerfile .).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ARG TORCH_INDEX=
# XGBoost, LightGBM and torch load libgomp for their threads (the Debian-made base has it already).
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip-ca --mount=type=bind,source=infra/docker/wheels,target=/wheels \
    --mount=type=bind,source=infra/docker/pip-install.sh,target=/usr/local/bin/pip-install \
    pip-install /opt/venv -r /tmp/requirements.txt
WORKDIR /src
COPY pyproject.toml README.md ./
# What the training CLI imports: the layers up to training; no service, validation or orchestration.
COPY core core
COPY configs configs
COPY feature_store feature_store
COPY model_bundle model_bundle
COPY model_registry model_registry
COPY model_training model_training
RUN --mount=type=bind,source=infra/docker/pip-install.sh,target=/usr/local/bin/pip-install \
    pip-install /opt/venv --no-deps --no-build-isolation --no-index .
RUN useradd --uid 10001 --create-home trainer && mkdir /app && chown trainer /app
USER 10001
WORKDIR /app
ARG CODE_VERSION=unknown
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 MLOPS_PROFILE=k8s MLOPS_CODE_VERSION=$CODE_VERSION
ENTRYPOINT ["python", "-m", "model_training"]

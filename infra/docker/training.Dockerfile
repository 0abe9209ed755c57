# Training and tuning pods (KubernetesPodOperator on the GPU node pool): the training CLI as entrypoint.
# PyPI's Linux torch and xgboost wheels carry CUDA; the node's NVIDIA driver comes in through the
# container runtime. Build from the repository root: docker build -f infra/docker/training.Dockerfile .
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt
WORKDIR /src
COPY pyproject.toml README.md ./
# What the training CLI imports: the layers up to training; no service, validation or orchestration.
COPY core core
COPY configs configs
COPY feature_store feature_store
COPY model_bundle model_bundle
COPY model_registry model_registry
COPY model_training model_training
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation .
RUN useradd --uid 10001 --create-home trainer && mkdir /app && chown trainer /app
USER 10001
WORKDIR /app
ARG CODE_VERSION=unknown
ENV PATH=/opt/venv/bin:$PATH MLOPS_PROFILE=k8s MLOPS_CODE_VERSION=$CODE_VERSION
ENTRYPOINT ["python", "-m", "model_training"]

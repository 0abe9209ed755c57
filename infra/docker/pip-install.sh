#!/bin/sh
# pip inside an image build, as every Dockerfile here runs it (bind-mounted, never copied into an image):
#   pip-install.sh VENV PIP-ARGS...
# The venv is made if missing. The CA bundle a network may need arrives as the build secret `pip-ca`
# (docker build --secret id=pip-ca,src=...), read for this step only and never baked into a layer.
# Wheels in infra/docker/wheels (mounted at /wheels: make images puts the CPU torch wheel there when
# this machine has one) come before the index; TORCH_INDEX (a build argument, PyTorch's CPU index by
# default) serves CPU torch where PyPI's default Linux wheel would bring several GB of CUDA.
set -eu
venv="$1"
shift
[ -x "$venv/bin/python" ] || python -m venv "$venv"
if [ -s /run/secrets/pip-ca ]; then
    export PIP_CERT=/run/secrets/pip-ca
fi
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
exec "$venv/bin/pip" install --find-links /wheels ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$@"

#!/usr/bin/env bash
# The Airflow image's entrypoint, as in Airflow's own image: a command that is a program (bash,
# python, ray) runs as given; anything else is an Airflow command (api-server, scheduler,
# dag-processor, triggerer, db migrate...).
set -euo pipefail
if [ "$#" -gt 0 ] && command -v "$1" >/dev/null 2>&1; then
    exec "$@"
fi
exec airflow "$@"

#!/usr/bin/env bash
# The MLflow tracking server with logins (MLflow's basic-auth app). Every request but /health needs
# a user; the admin user is created on first start from MLFLOW_AUTH_ADMIN_USERNAME and
# MLFLOW_AUTH_ADMIN_PASSWORD. The auth database URI holds a password, so the auth config is written
# here, from the environment, to a file only this user can read; nothing is baked into the image.
# Arguments are passed on to `mlflow server`.
set -euo pipefail

: "${MLFLOW_AUTH_ADMIN_USERNAME:?set MLFLOW_AUTH_ADMIN_USERNAME}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD}"
: "${MLFLOW_AUTH_DATABASE_URI:?set MLFLOW_AUTH_DATABASE_URI (the users and permissions database)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (signs the login forms)}"

umask 077
config="$(mktemp -d)/basic_auth.ini"
# ConfigParser reads '%' as interpolation: double it.
cat >"$config" <<INI
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = ${MLFLOW_AUTH_DATABASE_URI//%/%%}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
# A login is a deliberately slow password hash (about 0.1 s of CPU); every request of a training run
# or a model download carries one. A checked login is trusted for 60 s per worker, so a changed or
# revoked password takes up to a minute to apply everywhere.
auth_cache_ttl_seconds = 60
INI
export MLFLOW_AUTH_CONFIG_PATH="$config"
# MLflow's job runner (a pool of huey consumer processes for GenAI jobs: judges, prompt optimization)
# serves nothing the platform submits: off unless asked for.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
exec mlflow server --app-name basic-auth "$@"

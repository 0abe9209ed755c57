#!/usr/bin/env bash
# One database and one role per component (Airflow, MLflow, Feast registry, Optuna), each with its own
# password from the environment. Compose runs it when the Postgres volume is first created; it is safe
# to run again (roles and databases are created once; passwords and ownership are set every time).
# Each role owns its database, and so its public schema (PostgreSQL 15 and later grant nothing there
# to other roles).
set -euo pipefail

create() {
  local name="$1" password="$2"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="$name" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'name', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'name', :'name') \gexec
SQL
}

create airflow "$AIRFLOW_DB_PASSWORD"
create mlflow "$MLFLOW_DB_PASSWORD"
create feast "$FEAST_DB_PASSWORD"
create optuna "$OPTUNA_DB_PASSWORD"

#!/usr/bin/env bash
# One role per component (Airflow, MLflow, Feast registry, Optuna, forecast table), owning its database(s), each with its
# own password from the environment. Compose runs it when the Postgres volume is first created; it is safe
# to run again (roles and databases are created once; passwords and ownership are set every time).
# Each role owns its database, and so its public schema (PostgreSQL 15 and later grant nothing there
# to other roles).
set -euo pipefail

# create ROLE PASSWORD [DATABASE]: the role, and a database it owns (named after it by default).
create() {
  local name="$1" password="$2" db="${3:-$1}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v name="$name" -v password="$password" -v db="$db" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'name', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'name')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'name') \gexec
SQL
}

create airflow "$AIRFLOW_DB_PASSWORD"
create mlflow "$MLFLOW_DB_PASSWORD"
create mlflow "$MLFLOW_DB_PASSWORD" mlflow_auth  # the tracking server's users and permissions
create feast "$FEAST_DB_PASSWORD"
create optuna "$OPTUNA_DB_PASSWORD"
create forecasts "$FORECASTS_DB_PASSWORD"  # the forecast table (issued forecasts, their scores)

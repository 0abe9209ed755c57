#!/usr/bin/env bash
# A local Airflow (api-server, scheduler, dag-processor, triggerer) with this repo's DAGs, on the
# local profile. Prints the UI address and the login, then runs until Ctrl+C.
set -euo pipefail

VENV_BIN=$(cd "${VENV_BIN:-.venv/bin}" && pwd)
export PATH="$VENV_BIN:$PATH"
export MLOPS_HOME=$(mkdir -p "${MLOPS_HOME:-.mlops}" && cd "${MLOPS_HOME:-.mlops}" && pwd)
export AIRFLOW_HOME=${AIRFLOW_HOME:-$MLOPS_HOME/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=${AIRFLOW__CORE__DAGS_FOLDER:-$(pwd)/dags}
export AIRFLOW__CORE__LOAD_EXAMPLES=False
port=${AIRFLOW__API__PORT:-8080}
export AIRFLOW__API__PORT=$port
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:$port/execution/

airflow standalone > "$MLOPS_HOME/airflow-standalone.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT INT TERM
printf 'starting Airflow (log: %s) ' "$MLOPS_HOME/airflow-standalone.log"
until curl -sf "http://localhost:$port/api/v2/monitor/health" > /dev/null; do
    kill -0 $pid 2>/dev/null || { echo; echo "Airflow exited; see the log"; exit 1; }
    printf '.'; sleep 2
done
cat <<TXT

Airflow UI:  http://localhost:$port
login:       admin / $(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated")
DAGs:        $AIRFLOW__CORE__DAGS_FOLDER (unpause retrain_ett_forecaster, then Trigger with its form)
Ctrl+C stops it.
TXT
wait $pid

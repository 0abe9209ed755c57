#!/usr/bin/env bash
# The whole chain on the local profile: the retraining DAG in-process (ingest -> validate ->
# features -> Feast apply/materialize -> tune -> train + backtest -> register -> gates -> promote),
# the batch forecast of every entity into the forecast table, then serve -> one forecast over HTTP
# -> stop. DATASET, LOGICAL_DATE, ENTITY, MODEL and N_TRIALS may be set from the environment.
set -euo pipefail

PY=${PY:-.venv/bin/python}
DATASET=${DATASET:-configs/datasets/ett.yaml}
LOGICAL_DATE=${LOGICAL_DATE:-2018-06-26}
ENTITY=${ENTITY:-ETTh1}
MODEL=${MODEL:-xgboost}
export MLOPS_HOME=${MLOPS_HOME:-.mlops}
export MLOPS_DATASET_CONFIG=$DATASET
export MLOPS_SERVING_PORT=${MLOPS_SERVING_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
started=$(date +%s)

step() { printf '\n==> %s\n' "$*"; }

name=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$DATASET")
export MLOPS_DATASETS_DIR=$(cd "$(dirname "$DATASET")" && pwd)
conf=$(printf '{"training_window_end": "%s", "model_family": "%s", "n_trials": %s, "reason": "make demo"}' \
    "$LOGICAL_DATE" "$MODEL" "${N_TRIALS:-0}")
step "retrain_${name}_forecaster with dag.test(): ingest -> validate -> features -> Feast -> tune -> train -> register -> gates -> promote"
"$PY" infra/scripts/run_dag.py "retrain_${name}_forecaster" --conf "$conf" --report "$MLOPS_HOME/retrain_timings.json"
# No champion (the first version lost to a baseline, or drift blocked it): say why and stop here.
"$PY" -m model_registry champion --dataset "$DATASET" --plot "$MLOPS_HOME/forecast.png"

step "forecast_${name} with dag.test(): the champion forecasts every entity for $LOGICAL_DATE into the forecast table"
"$PY" infra/scripts/run_dag.py "forecast_${name}" --report "$MLOPS_HOME/forecast_timings.json"

step "serve on 127.0.0.1:$MLOPS_SERVING_PORT and ask for a forecast of $ENTITY"
"$PY" -m model_serving > "$MLOPS_HOME/serving.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
"$PY" infra/scripts/forecast_client.py --url "http://127.0.0.1:$MLOPS_SERVING_PORT" --entity "$ENTITY" --wait 180

home=$(cd "$MLOPS_HOME" && pwd)
cat <<TXT

==> done in $(( $(date +%s) - started ))s
  MLflow runs:      $home/mlflow.db  (artifacts in $home/mlartifacts)
  open the UI:      .venv/bin/mlflow ui --backend-store-uri sqlite:///$home/mlflow.db
  forecast plot:    $home/forecast.png  (the champion's history, forecast and bands; also in its MLflow run)
  GE result:        $(ls "$home"/artifacts/*/ds="$LOGICAL_DATE"/validation/validation_result.json)
  GE data docs:     $(ls "$home"/artifacts/*/ds="$LOGICAL_DATE"/validation/gx/uncommitted/data_docs/local_site/index.html)
  stored forecasts: $("$PY" -c 'from core.settings import get_settings; print(get_settings().forecast_store_url)')  (GET /v1/forecasts?entity_id=$ENTITY)
  task timings:     $home/retrain_timings.json
  service log:      $home/serving.log
TXT

#!/usr/bin/env bash
# The whole chain on the local profile: ingest -> validate -> features -> Feast apply/materialize
# -> train + backtest -> register -> promote -> serve -> one forecast over HTTP -> stop.
set -euo pipefail

PY=${PY:-.venv/bin/python}
DATASET=${DATASET:-configs/datasets/ett.yaml}
LOGICAL_DATE=${LOGICAL_DATE:-2018-06-26}
ENTITY=${ENTITY:-ETTh1}
MODEL=${MODEL:-xgboost}
export MLOPS_HOME=${MLOPS_HOME:-.mlops}
export MLOPS_DATASET_CONFIG=$DATASET
export MLOPS_SERVING_PORT=${MLOPS_SERVING_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
args=(--dataset "$DATASET" --logical-date "$LOGICAL_DATE")
started=$(date +%s)

step() { printf '\n==> %s\n' "$*"; }

step "ingest $DATASET for $LOGICAL_DATE"
"$PY" -m data_pipeline ingest "${args[@]}"
step "validate (Great Expectations)"
"$PY" -m data_pipeline validate "${args[@]}"
step "build features"
"$PY" -m feature_store build "${args[@]}"
step "feast apply"
"$PY" -m feature_store apply "${args[@]}"
step "feast materialize"
"$PY" -m feature_store materialize "${args[@]}"
run_tag="demo_run=$(date +%Y%m%dT%H%M%S)-$$"
step "train $MODEL + backtest (one MLflow run)"
"$PY" -m model_training train "${args[@]}" --model "$MODEL" --tag "$run_tag"
step "register the run's bundle as the challenger"
"$PY" -m model_registry register "${args[@]}" --tag "$run_tag"
step "promote the challenger if it beats seasonal naive and the champion"
"$PY" -m model_registry promote "${args[@]}"

step "serve on 127.0.0.1:$MLOPS_SERVING_PORT and ask for a forecast of $ENTITY"
"$PY" -m model_serving > "$MLOPS_HOME/serving.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
"$PY" -m model_serving.client --url "http://127.0.0.1:$MLOPS_SERVING_PORT" --entity "$ENTITY" --wait 180

home=$(cd "$MLOPS_HOME" && pwd)
cat <<TXT

==> done in $(( $(date +%s) - started ))s
  MLflow runs:      $home/mlflow.db  (artifacts in $home/mlartifacts)
  open the UI:      .venv/bin/mlflow ui --backend-store-uri sqlite:///$home/mlflow.db
  GE result:        $(ls "$home"/artifacts/*/ds="$LOGICAL_DATE"/validation/validation_result.json)
  GE data docs:     $(ls "$home"/artifacts/*/ds="$LOGICAL_DATE"/validation/gx/uncommitted/data_docs/local_site/index.html)
  service log:      $home/serving.log
TXT

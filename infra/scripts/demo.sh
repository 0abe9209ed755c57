#!/usr/bin/env bash
# The whole chain on the local profile: the retraining DAG in-process (ingest -> validate ->
# features -> Feast apply/materialize -> tune -> train + backtest -> register -> gates -> promote),
# the batch forecast of every entity into the forecast table, then serve -> one forecast over HTTP
# -> stop. DATASET, LOGICAL_DATE, ENTITY, MODEL and N_TRIALS may be set from the environment
# (LOGICAL_DATE and ENTITY default to the dataset config's daily.history_end and first entity).
#
# Quiet by default (one line per task, the forecast as a table, where to look next): Airflow's,
# the libraries' and the service's logs go to files under $MLOPS_HOME/logs, named as it runs.
# VERBOSE=1 puts every log line on the terminal.
set -euo pipefail

PY=${PY:-.venv/bin/python}
DATASET=${DATASET:-configs/datasets/ett.yaml}
# Defaults from the dataset config: the newest day of a source that no longer grows (daily.history_end,
# else today), and the first entity it names.
config_default() {
    "$PY" - "$DATASET" "$1" <<'PYTHON'
import datetime, sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
if sys.argv[2] == "date":
    print((config.get("daily") or {}).get("history_end") or datetime.date.today())
else:
    print(next(iter(config["source"].get("uris") or {}), ""))
PYTHON
}
LOGICAL_DATE=${LOGICAL_DATE:-$(config_default date)}
ENTITY=${ENTITY:-$(config_default entity)}
if [[ -z $ENTITY ]]; then echo "set ENTITY: $DATASET names no entity in source.uris" >&2; exit 2; fi
MODEL=${MODEL:-xgboost}
N_TRIALS=${N_TRIALS:-0}
export VERBOSE=${VERBOSE:-}
export MLOPS_HOME=${MLOPS_HOME:-.mlops}
export MLOPS_DATASET_CONFIG=$DATASET
export MLOPS_SERVING_PORT=${MLOPS_SERVING_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
started=$(date +%s)

mkdir -p "$MLOPS_HOME/logs"
home=$(cd "$MLOPS_HOME" && pwd)
logs=$home/logs
name=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$DATASET")
export MLOPS_DATASETS_DIR=$(cd "$(dirname "$DATASET")" && pwd)
conf=$(printf '{"training_window_end": "%s", "model_family": "%s", "n_trials": %s, "reason": "make demo"}' \
    "$LOGICAL_DATE" "$MODEL" "$N_TRIALS")

echo "==> make demo: $name ($DATASET), $MODEL, $N_TRIALS tuning trials, data up to $LOGICAL_DATE, in $home${VERBOSE:+ (VERBOSE)}"
"$PY" infra/scripts/run_dag.py "retrain_${name}_forecaster" --conf "$conf" --report "$logs/retrain_timings.json"

# No champion (the first version lost to a baseline, or drift blocked it): say why and stop here,
# rather than start a service that has nothing to serve.
status=0
champion=$("$PY" -m model_registry champion --dataset "$DATASET" --plot "$home/forecast.png" 2>"$logs/champion.log") \
    || status=$?
if [[ $status -ne 0 ]]; then
    if [[ -n $VERBOSE ]]; then cat "$logs/champion.log" >&2; fi
    echo "==> stopped: no champion to serve"
    awk '/has no champion|has no version yet/ { found = 1 } found' "$logs/champion.log"
    if [[ $status -ne 3 ]]; then
        tail -n 20 "$logs/champion.log"
    elif grep -q "lost on the holdout" "$logs/champion.log"; then
        echo "  in the demo: MODEL=auto_ets make demo (a statistical model per series), MODEL=lightgbm make demo," \
            "or N_TRIALS=10 make demo (now MODEL=$MODEL N_TRIALS=$N_TRIALS)"
    fi
    echo "  the retraining's log: $logs/retrain_${name}_forecaster.log"
    exit "$status"
fi
# Quiet, the table's title names the champion that answered; a gate that gave no verdict says so.
if [[ -n $VERBOSE ]]; then
    cat "$logs/champion.log" >&2; echo "$champion"
else  # a gate without a verdict, the refit that serves, and a selection's leaderboard
    grep -E '^  (note:|served:|candidates|  |[0-9]+ series have)' <<<"$champion" || true
fi

"$PY" infra/scripts/run_dag.py "forecast_${name}" --report "$logs/forecast_timings.json"

echo "==> serving on 127.0.0.1:$MLOPS_SERVING_PORT (log: $logs/serving.log); the forecast of $ENTITY:"
"$PY" -m model_serving >"$logs/serving.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
"$PY" infra/scripts/forecast_client.py --url "http://127.0.0.1:$MLOPS_SERVING_PORT" --entity "$ENTITY" \
    --wait 180 --save "$home/forecast.json" --max-steps 24 || {
    status=$?
    echo "==> no forecast; the end of the service's log ($logs/serving.log):"
    tail -n 20 "$logs/serving.log"
    exit "$status"
}
if [[ -n $VERBOSE ]]; then cat "$home/forecast.json" "$logs/serving.log"; fi

# The day's validation page (the site's index fills its tables from CDN scripts; this page reads offline).
docs=$(ls "$home"/artifacts/*/ds="$LOGICAL_DATE"/validation/gx/uncommitted/data_docs/local_site/validations/*/*/*/*.html \
    2>/dev/null | tail -n 1 || true)
cat <<TXT
==> done in $(( $(date +%s) - started ))s; where to look next:
  MLflow UI:      $(dirname "$PY")/mlflow ui --backend-store-uri sqlite:///$home/mlflow.db
  forecast plot:  $home/forecast.png
  GE data docs:   ${docs:-none (no validation of $LOGICAL_DATE under $home/artifacts)}
  logs, timings:  $logs/ (retrain_${name}_forecaster.log, forecast_${name}.log, serving.log, *_timings.json)
TXT

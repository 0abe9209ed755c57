# Batch MLOps platform: the commands a newcomer needs.
#   make demo   set up, then run the whole chain locally and print a served forecast
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: help setup test-servers demo m4-data test test-fast test-random test-gpu audit bench-accuracy bench-m4 bench-training bench-serving bench-soak bench-dags bench-scale simulate lint format serve airflow mlflow-ui images up down stack-smoke clean docs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

setup: $(VENV)/.installed  ## create .venv with the pinned dependencies (idempotent)

# pip's output goes to a log, shown only when the install fails: a newcomer's terminal stays readable.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-bench.txt requirements-docs.txt pyproject.toml
	@echo "setting up $(VENV) with the pinned dependencies (log: $(VENV)/install.log)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@{ $(BIN)/python -m pip install --upgrade pip \
		&& $(BIN)/python -m pip install -r requirements-dev.txt \
		&& $(BIN)/python -m pip install --no-deps --no-build-isolation -e . ; } > $(VENV)/install.log 2>&1 \
		|| { tail -n 40 $(VENV)/install.log; echo "setup failed; the whole log: $(VENV)/install.log"; exit 1; }
	@touch $@

demo: setup  ## the retraining DAG with dag.test(), then serve and print one forecast (VERBOSE=1: every log line)
	@PY=$(BIN)/python infra/scripts/demo.sh

test-servers:  ## the servers the tests start (Debian packages): installs them as root, else prints the command
	infra/scripts/test-servers.sh

# The suite on TEST_WORKERS processes (pytest-xdist), each with its own temporary folders, ports and
# Airflow home; a module's tests stay on one worker (--dist loadfile), so what a module shares is made
# once, and the trained champion the serving and registry tests read is trained once per run
# (tests/utils/shared.py). Most tests wait on servers and subprocesses, so more workers than cores pay,
# except for the modules that start a whole platform (marked heavy): no more than TEST_HEAVY_LIMIT of
# them run at once, the other workers taking the light modules meanwhile (tests/utils/scheduling.py).
# OpenMP threads (XGBoost, LightGBM, torch) that spin while they wait for work take the cores from the
# other workers (a tuning test ran 20 times slower so): passive waiting changes no result, only what an
# idle thread does, and the servers and training subprocesses the tests start inherit it.
TEST_WORKERS ?= 4
TEST_HEAVY_LIMIT ?= 2
TEST_ENV   := OMP_WAIT_POLICY=PASSIVE TEST_HEAVY_LIMIT=$(TEST_HEAVY_LIMIT)
FAST       := not slow and not integration and not e2e and not gpu

test: setup test-servers lint  ## lint, types and layer contracts, then the whole suite (unit, real servers, e2e) on TEST_WORKERS workers
	$(TEST_ENV) $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=10

test-fast: setup  ## the inner loop: the tests that need no server and train nothing big, on two workers
	$(TEST_ENV) $(BIN)/pytest -n 2 -m "$(FAST)"

test-random: setup test-servers  ## the whole suite in a shuffled order (pytest-randomly; RANDOM_SEED=n repeats an order)
	$(TEST_ENV) $(BIN)/pytest -p randomly $(if $(RANDOM_SEED),--randomly-seed=$(RANDOM_SEED)) -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-gpu: setup  ## the GPU paths of every model family (needs a CUDA device)
	$(BIN)/pytest -m gpu

# pip-audit lives in a venv of its own, so its dependencies never change the platform's pins.
AUDIT_VENV ?= .venv-audit
AUDITED    := requirements.txt requirements-dev.txt requirements-bench.txt requirements-docs.txt requirements-serving.txt requirements-audit.txt
AUDIT_ARGS ?=

audit: $(AUDIT_VENV)/.installed  ## known vulnerabilities in the pinned requirements (ignore list: infra/audit/) -> reports/audit.json
	$(AUDIT_VENV)/bin/python infra/scripts/audit.py --ignore-file infra/audit/ignored-vulnerabilities.toml \
		--out reports/audit.json $(AUDIT_ARGS) $(AUDITED)

$(AUDIT_VENV)/.installed: requirements-audit.txt
	test -x $(AUDIT_VENV)/bin/python || $(PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AUDIT_VENV)/bin/python -m pip install --quiet -r requirements-audit.txt
	touch $@

bench-accuracy: setup  ## ETTh1/ETTh2 long-horizon protocol -> reports/accuracy.{json,md,png}
	$(BIN)/python -m benchmarks.accuracy --config configs/benchmarks/ltsf_univariate.yaml --out reports

bench-m4: setup  ## M4 Hourly and Weekly by M4's rules: Naive2, sNaive, naive and the peers (statsforecast, mlforecast) beside the published rows -> reports/m4.{json,md,png}
	$(BIN)/python -m benchmarks.m4 --out reports $(M4_ARGS)

m4-data: setup  ## M4 Hourly and Weekly training values as long rows (data/m4/m4_{hourly,weekly}.csv) for their dataset configs
	$(BIN)/python -m benchmarks.m4.export

bench-training: setup  ## fit time per family; XGBoost tuning raced: ours vs the previous strategy (same trials), vs FLAML (same wall time) -> reports/training_speed.{json,md}
	MLOPS_HOME=$(abspath .mlops)/bench $(BIN)/python -m benchmarks.training_speed --out reports

bench-serving: setup  ## latency at fixed rates: ours vs a bare floor, feast serve and mlflow models serve -> reports/serving.{json,md,png}
	$(BIN)/python -m benchmarks.serving --home $(abspath .mlops)/bench-serving --out reports

# SCALE_ARGS="--series 1000 10000 100000" adds a count; "--stages ingest validate" runs a part.
SCALE_ARGS ?=
bench-scale: setup test-servers  ## each stage's wall time and peak memory for 1,000 and 10,000 daily series, growth exponents, Ray's two workers vs one -> reports/scale.{json,md,png}
	$(BIN)/python -m benchmarks.scale --home $(abspath .mlops)/bench-scale --out reports $(SCALE_ARGS)

bench-dags: setup  ## parse time of each DAG file against a one-task DAG, and Airflow's import timeout -> reports/dag_parse.{json,md}
	$(BIN)/python -m benchmarks.dag_parse --out reports

# e.g. make simulate DATASET=configs/datasets/ett.yaml START=2017-07-02 DAYS=30 SHIFT=level_scale SHIFT_DAY=8
#      make simulate DAYS=30 FAULTS=standard SEED=7   (the loop on real servers and Airflow's scheduler, under load, with faults)
#      make simulate DAYS=30 FAULTS=standard SEED=1 LOAD_RATE=50   (the same at 50 requests a second)
#      make simulate DAYS=30 SERVERS=1                 (the same servers and load without faults: the control)
DATASET ?= configs/datasets/ett.yaml
DAYS ?= 30
START ?=
SHIFT ?= none
SHIFT_DAY ?= 0
FAULTS ?= none
SEED ?= 7
LOAD_RATE ?= 20
SERVERS ?=

simulate: setup  ## replay DAYS days of DATASET from START through the daily loop's DAGs -> reports/simulation.{json,md}
	$(BIN)/python -m simulation --dataset $(DATASET) --days $(DAYS) $(if $(START),--start $(START)) --shift $(SHIFT) --shift-day $(SHIFT_DAY) --faults $(FAULTS) $(if $(SERVERS),--servers) --seed $(SEED) --load-rate $(LOAD_RATE) --home $(abspath .mlops)/simulation --out reports

# e.g. make bench-soak SOAK_ARGS="--seconds 60 --window 15"; see python -m benchmarks.soak --help
SOAK_ARGS ?= --rate 200 --workers 1 --seconds 600 --window 30

bench-soak: setup  ## our service under 10 min of steady load: p99 and RSS per window, flat or not -> reports/soak.{json,md}
	$(BIN)/python -m benchmarks.soak --home $(abspath .mlops)/bench-serving --out reports $(SOAK_ARGS)

lint: setup  ## ruff, mypy and the import-linter contracts of the layers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-logo --no-cache

format: setup  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The docs site (mkdocs.yml, pages in docs/): --strict fails on a broken link or anchor and on a page left
# out of the nav; the reference pages are generated from the code (infra/scripts/docs_pages.py).
docs: setup  ## the docs site (MkDocs, Material) with mkdocs build --strict -> site/ (open site/index.html)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

serve: setup  ## run the forecasting service on the settings' host and port
	$(BIN)/python -m model_serving

airflow: setup  ## start a local Airflow with the project's DAGs; prints the UI address and login
	VENV_BIN=$(BIN) infra/scripts/airflow.sh

mlflow-ui: setup  ## open MLflow's UI on the local tracking database
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath .mlops)/mlflow.db

clean:  ## remove local state and caches (keeps .venv)
	rm -rf .mlops reports site .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# The images: on the official Python image, or on one made from Debian's packages where no registry
# answers (BASE=debian-local; auto picks). Build time and size per image: reports/images.json.
BASE   ?= auto
IMAGES ?= airflow mlflow serving training

images:  ## build the platform's images (BASE=auto|official|debian-local, IMAGES=...) -> reports/images.json
	BASE=$(BASE) infra/docker/images.sh $(IMAGES)

up:  ## the whole stack in containers, images built where missing; waits for health, prints the UIs (.env from .env.example)
	BASE=$(BASE) infra/docker/stack.sh up

down:  ## stop the stack (its volumes stay; docker compose down --volumes drops them)
	BASE=$(BASE) infra/docker/stack.sh down

stack-smoke: setup  ## through the stack: retrain over Airflow's REST API, champion served, stored and scraped, then down and up
	BASE=$(BASE) $(BIN)/pytest -m stack tests/stack

"""Registering bundles as model versions with alias ``challenger`` (promotion: :mod:`model_registry.promotion`)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from core.settings import Settings
from model_registry.bundles import MODEL_URI_TAG, REFIT_URI_TAG
from model_registry.outcomes import RegisteredVersion
from model_registry.provenance import BUNDLE_DIGEST_TAG, discard, seal
from model_registry.tracking import CHALLENGER, CHAMPION, client, literal, require_configured

log = logging.getLogger(__name__)

REQUIRED_SCORES = ("backtest_mae", "baseline_mae")
# A refit (the evaluated fit's model fitted on every labelled row) names the version the gates judged,
# and that version names its refit.
EVALUATED_VERSION_TAG = "evaluated_version"
REFIT_VERSION_TAG = "refit_version"
FIT_TAG = "fit"
# The first and last target times of the rows a version was fit on, as "start/end".
DATA_WINDOW_TAG = "data_window"


def data_window(tags: dict[str, str]) -> tuple[str | None, str | None]:
    """(first, last) target time of the rows a version was fit on, from its tags (None: not recorded)."""
    start, _, end = tags.get(DATA_WINDOW_TAG, "").partition("/")
    return start or None, end or None


def training_scores(run: Any) -> dict[str, float]:
    """The backtest scores a training run must have logged (every gate reads these)."""
    missing = set(REQUIRED_SCORES) - set(run.data.metrics)
    if missing:
        raise RuntimeError(f"training run {run.info.run_id} logged no {sorted(missing)}")
    return dict(run.data.metrics)


def find_run(settings: Settings, tag: str, value: str) -> str:
    """The newest finished run carrying ``tag=value`` (how a DAG finds what its training pod logged)."""
    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(settings.mlflow_experiment)
    runs: list[Any] = []
    if experiment is not None:
        runs = mlflow_client.search_runs(
            experiment_ids=[experiment.experiment_id],
            filter_string=f"tags.{tag} = {literal(value)} and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    if not runs:
        raise LookupError(
            f"no finished training run tagged {tag}={value} in experiment {settings.mlflow_experiment!r} of "
            f"{settings.mlflow_tracking_uri}: the training step (its pod or process) ended without logging one, "
            "even if it exited 0; its output, in that task's log, says what it did instead"
        )
    return str(runs[0].info.run_id)


def register_challenger(
    settings: Settings, model_name: str, run_id: str, lineage: dict[str, str] | None = None
) -> RegisteredVersion:
    """Register a training run's bundle as a new version with alias ``challenger``.

    The run's output is checked first (finished, backtest scores logged, bundle loads and predicts
    its input example): a training job that died quietly must not become a version. Registering
    the same run again returns its existing version. ``lineage`` (e.g. the data check's result)
    joins the tags the version gets from its run: data window, dataset fingerprint, code version,
    DAG run id.
    """
    import mlflow

    require_configured(settings)
    mlflow_client = client(settings)
    same_run = mlflow_client.search_model_versions(f"name = {literal(model_name)} and run_id = {literal(run_id)}")
    existing = [v for v in same_run if EVALUATED_VERSION_TAG not in v.tags]  # the run's refit is not it
    if existing:
        newest = max(existing, key=lambda v: int(v.version))
        version = str(newest.version)
        log.info("run %s is already %s version %s", run_id, model_name, version)
        if BUNDLE_DIGEST_TAG not in newest.tags:  # registered before digests were recorded: seal it now
            digest = _sealed_and_warmed(settings, f"models:/{model_name}/{version}")
            mlflow_client.set_model_version_tag(model_name, version, BUNDLE_DIGEST_TAG, digest)
    else:
        run = mlflow_client.get_run(run_id)
        if run.info.status != "FINISHED":
            raise RuntimeError(f"training run {run_id} is {run.info.status}, not FINISHED")
        training_scores(run)
        model_uri = run.data.tags.get(MODEL_URI_TAG)
        if not model_uri:
            raise RuntimeError(f"training run {run_id} logged no model")
        tags = {"run_id": run_id, **_version_tags(run), BUNDLE_DIGEST_TAG: _sealed_and_warmed(settings, model_uri)}
        registered = mlflow.register_model(model_uri, model_name, tags=tags)
        version = str(registered.version)
        log.info("registered %s version %s from run %s", model_name, version, run_id)
    for key, value in (lineage or {}).items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)
    mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version)
    return RegisteredVersion(name=model_name, version=version, run_id=run_id)


def register_refit(settings: Settings, model_name: str, evaluated: RegisteredVersion) -> RegisteredVersion:
    """The version to serve for ``evaluated`` once its gates have passed: the refit its training run
    logged (the same model fitted on every labelled row) registered as a version of its own, checked
    and sealed like any, carrying the evaluated version's tags (lineage, gates) with its own data
    window, ``fit=refit`` and ``evaluated_version``; the evaluated version gets ``refit_version``.
    A run without a refit (``training.refit: false``) serves ``evaluated`` itself. Retried, it returns
    the refit registered first."""
    import mlflow

    require_configured(settings)
    mlflow_client = client(settings)
    query = f"name = {literal(model_name)} and tags.`{EVALUATED_VERSION_TAG}` = {literal(str(evaluated.version))}"
    earlier = mlflow_client.search_model_versions(query)
    if earlier:
        version = str(min(earlier, key=lambda v: int(v.version)).version)
        log.info("%s version %s is already the refit of version %s", model_name, version, evaluated.version)
    else:
        run = mlflow_client.get_run(evaluated.run_id)
        refit_uri = run.data.tags.get(REFIT_URI_TAG)
        if not refit_uri:
            return evaluated
        judged = mlflow_client.get_model_version(model_name, evaluated.version)
        params = run.data.params
        own = (BUNDLE_DIGEST_TAG, REFIT_VERSION_TAG, DATA_WINDOW_TAG)  # the refit's own, not the judged fit's
        tags = {
            **{k: v for k, v in judged.tags.items() if k not in own},
            FIT_TAG: "refit",
            EVALUATED_VERSION_TAG: evaluated.version,
            DATA_WINDOW_TAG: f"{params.get('refit_start')}/{params.get('refit_end')}",
            BUNDLE_DIGEST_TAG: _sealed_and_warmed(settings, refit_uri),
        }
        version = str(mlflow.register_model(refit_uri, model_name, tags=tags).version)
        log.info("registered %s v%s: v%s refitted on every labelled row", model_name, version, evaluated.version)
    mlflow_client.set_model_version_tag(model_name, evaluated.version, REFIT_VERSION_TAG, version)
    return RegisteredVersion(name=model_name, version=version, run_id=evaluated.run_id)


def evaluated_fit(settings: Settings, model_name: str, version: str) -> str:
    """The version the gates judged for ``version``: the evaluated fit of a refit, else itself."""
    tags = client(settings).get_model_version(model_name, version).tags
    return str(tags.get(EVALUATED_VERSION_TAG) or version)


def _version_tags(run: Any) -> dict[str, str]:
    """What a version must tell about where it came from, copied from its training run."""
    keys = ("dataset", "family", "logical_date", "dag_run_id", "dataset_fingerprint", "code_version")
    tags = {k: v for k, v in run.data.tags.items() if k in keys}
    params = run.data.params
    if "training_start" in params and "training_end" in params:
        tags[DATA_WINDOW_TAG] = f"{params['training_start']}/{params['training_end']}"
    return tags


def _sealed_and_warmed(settings: Settings, model_uri: str) -> str:
    """The digest of the bundle at ``model_uri``, taken on the very copy that was then loaded and
    warmed: what is recorded is what was proven to serve."""
    import mlflow

    local, digest = seal(settings, model_uri)
    try:
        warm(mlflow.pyfunc.load_model(str(local)), model_uri)
    finally:
        discard(local)
    return digest


def warm(model: Any, label: str) -> None:
    """Predict the loaded bundle's own input example; raises when it cannot serve."""
    example = model.input_example
    if example is None:
        raise RuntimeError(f"{label} has no input example to warm with")
    forecast = model.predict(example)
    if len(forecast) != len(example) or not np.isfinite(np.asarray(forecast, dtype=float)).all():
        raise RuntimeError(f"{label} does not produce finite forecasts for its input example")


def alias_version(settings: Settings, model_name: str, alias: str) -> str | None:
    """The version an alias names, or None when it names none."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client(settings).get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def champion_version(settings: Settings, model_name: str) -> str | None:
    return alias_version(settings, model_name, CHAMPION)


def register_run_of(
    settings: Settings, model_name: str, tag: str, value: str, lineage: dict[str, str] | None = None
) -> RegisteredVersion:
    """Register the newest finished run tagged ``tag=value`` (what an orchestrated training logged).

    A version registered earlier for ``tag=value`` is returned instead: a retried training task logs
    a second run under the same tag, and the gates, promotion and summary of one orchestrated run must
    all speak of one version, the first that any of its tasks saw.
    """
    query = f"name = {literal(model_name)} and tags.`{tag}` = {literal(value)}"
    earlier = client(settings).search_model_versions(query)
    if earlier:
        first = min(earlier, key=lambda v: int(v.version))
        log.info("%s=%s already registered %s version %s", tag, value, model_name, first.version)
        run_id = str(first.run_id)
    else:
        run_id = find_run(settings, tag, value)
    # The tag goes on the version itself, so that the lookup above finds it whatever the tag is.
    return register_challenger(settings, model_name, run_id, {**(lineage or {}), tag: value})

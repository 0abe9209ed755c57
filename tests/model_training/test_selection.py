"""Choosing among candidates on their aligned backtests: series built so that the right answer is
known (a random walk, a strong daily season, a trend with a season) each get their own in
``per_series``, the dataset one in ``best``, and a bundle of the choice forecasts each series with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.columns import EVENT_TIMESTAMP, label_names
from core.dataset import DatasetConfig
from model_bundle.families.selection import SelectedForecaster
from model_training import devices, forecasters
from model_training.backtest import backtest
from model_training.selection import choose, series_scales
from tests.utils.data import write_dataset

CANDIDATES = ("naive", "seasonal_naive")


def known_series(days: int = 30, seed: int = 5) -> pd.DataFrame:
    """Hourly rows of three sites: a random walk (the last value is best), a strong daily cycle and a
    trend with a daily cycle (the value a day back is best)."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-03-01", periods=days * 24, freq="h", tz="UTC")
    t = np.arange(len(stamps))
    cycle = np.sin(2 * np.pi * t / 24)
    targets = {
        "walk": 100 + rng.normal(0, 1, len(t)).cumsum(),
        "daily": 50 + 10 * cycle + rng.normal(0, 0.5, len(t)),
        "trend": 20 + 0.01 * t + 5 * cycle + rng.normal(0, 0.3, len(t)),
    }
    return pd.concat(
        pd.DataFrame({"site": site, "ts": stamps, "load": 0.0, "aux": 0.0, "temp": values})
        for site, values in targets.items()
    )


def labelled(raw: pd.DataFrame, directory: Path) -> tuple[DatasetConfig, pd.DataFrame]:
    """The synthetic dataset config over ``raw`` and its rows with features and labels, oldest first."""
    from feature_store.features import build_features
    from feature_store.training_set import build_labels

    dataset = DatasetConfig.from_yaml(
        write_dataset(directory, raw.assign(ts=raw["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")))
    )
    frame = build_labels(raw, dataset).merge(build_features(raw, dataset), on=["site", EVENT_TIMESTAMP])
    return dataset, frame.dropna().sort_values(EVENT_TIMESTAMP).reset_index(drop=True)


@pytest.fixture(scope="module")
def backtests(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    dataset, frame = labelled(known_series(), tmp_path_factory.mktemp("selection"))
    results = {
        name: backtest(frame, dataset, lambda name=name: forecasters.create(name, dataset, device=devices.CPU))
        for name in CANDIDATES
    }
    return dataset, frame, results


def test_each_series_gets_the_candidate_that_is_right_for_it(backtests) -> None:  # type: ignore[no-untyped-def]
    dataset, frame, results = backtests
    scales = series_scales(frame, dataset)
    per_series = choose(results, scales, "per_series", min_errors=10)
    assert per_series.by_entity == {"walk": ["naive"], "daily": ["seasonal_naive"], "trend": ["seasonal_naive"]}
    assert per_series.of("a new site") == per_series.default == ["seasonal_naive"]  # two series of three
    board = per_series.leaderboard.set_index("candidate")
    assert board.loc["seasonal_naive", "series_best"] == 2
    assert board.loc["naive", "series_best"] == 1
    assert list(board.index) == ["seasonal_naive", "naive"], "best (lowest mean MASE) first"
    # Every series weighs the same: the walk's MASE is its MAE over its own scale.
    walk_mae = float(np.abs(results["naive"].errors()[0][results["naive"].errors()[1] == "walk"]).mean())
    assert per_series.mase_by_entity.loc["walk", "naive"] == pytest.approx(walk_mae / scales["walk"])

    best = choose(results, scales, "best")
    assert (best.default, best.by_entity) == (["seasonal_naive"], {})
    too_few = choose(results, scales, "per_series", min_errors=10**6)
    assert too_few.by_entity == {}, "no series has enough errors of its own: the dataset's choice"
    both = choose(results, scales, "combination", top_k=2)
    assert both.of("walk") == ["naive", "seasonal_naive"]


def test_a_bundle_of_the_choice_forecasts_each_series_with_its_own_and_loads_as_data(backtests, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset, frame, results = backtests
    labels = label_names(dataset)
    models = {
        n: forecasters.create(n, dataset, device=devices.CPU).fit(frame, frame[labels].to_numpy()) for n in CANDIDATES
    }
    choice = choose(results, series_scales(frame, dataset), "per_series", min_errors=10)
    bundle = SelectedForecaster(models, {n: n for n in CANDIDATES}, choice.default, choice.by_entity, "site")
    newest = frame.groupby("site").tail(3)
    predicted = bundle.predict(newest)
    for site, own in (("walk", "naive"), ("daily", "seasonal_naive"), ("trend", "seasonal_naive")):
        rows = (newest["site"] == site).to_numpy()
        np.testing.assert_array_equal(predicted[rows], models[own].predict(newest[rows]))
    bundle.save(tmp_path / "bundle")
    assert not list((tmp_path / "bundle").rglob("*.pkl"))
    restored = forecasters.load("selection", tmp_path / "bundle")
    np.testing.assert_array_equal(restored.predict(newest), predicted)
    unknown = newest.assign(site="elsewhere")
    np.testing.assert_array_equal(restored.predict(unknown), models["seasonal_naive"].predict(unknown))


def test_a_weighted_combination_weighs_each_series_candidates_by_their_inverse_error(backtests, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each series' top two, weighted by the inverse of their squared MASE on that series: the walk leans on the
    last value, the daily cycle on the value a day back, and the weights travel with the bundle."""
    dataset, frame, results = backtests
    labels = label_names(dataset)
    scales = series_scales(frame, dataset)
    choice = choose(results, scales, "combination", min_errors=10, top_k=2)
    mase = choice.mase_by_entity
    for site in ("walk", "daily"):
        names = choice.of(site)
        inverse = 1.0 / mase.loc[site, names].to_numpy() ** 2
        np.testing.assert_allclose(choice.weights_of(site), inverse / inverse.sum())
    assert choice.weights_of("walk")[choice.of("walk").index("naive")] > 0.5
    assert choice.weights_of("daily")[choice.of("daily").index("seasonal_naive")] > 0.5
    mean = mase.mean()[choice.default].to_numpy()
    np.testing.assert_allclose(choice.weights_of("a new site"), (1 / mean**2) / (1 / mean**2).sum())

    models = {
        n: forecasters.create(n, dataset, device=devices.CPU).fit(frame, frame[labels].to_numpy()) for n in CANDIDATES
    }
    bundle = SelectedForecaster(
        models, {n: n for n in CANDIDATES}, choice.default, choice.by_entity, "site", "weighted",
        choice.default_weights, choice.weights,
    )  # fmt: skip
    newest = frame.groupby("site").tail(3)
    predicted = bundle.predict(newest)
    for site in ("walk", "daily", "trend"):
        rows = (newest["site"] == site).to_numpy()
        own = [models[n].predict(newest[rows]) for n in choice.of(site)]
        expected = sum(w * f for w, f in zip(choice.weights_of(site), own, strict=True))
        np.testing.assert_allclose(predicted[rows], expected)
    bundle.save(tmp_path / "bundle")
    restored = forecasters.load("selection", tmp_path / "bundle")
    np.testing.assert_array_equal(restored.predict(newest), predicted)
    with pytest.raises(ValueError, match="one weight per candidate"):
        SelectedForecaster(models, {n: n for n in CANDIDATES}, choice.default, choice.by_entity, "site", "weighted")


def test_inverse_error_weights_give_an_exact_candidate_everything_and_a_broken_one_nothing() -> None:
    from model_training.selection import inverse_error_weights

    assert inverse_error_weights([1.0, 3.0]) == pytest.approx([0.9, 0.1])
    assert inverse_error_weights([0.0, 2.0, 0.0]) == [0.5, 0.0, 0.5]
    assert inverse_error_weights([np.nan, 2.0]) == [0.0, 1.0]
    assert inverse_error_weights([np.inf, np.nan]) == [0.5, 0.5]


@pytest.mark.parametrize("candidates", [["naive", "seasonal_naive"], ["naive", "seasonal_naive", "auto_theta"]])
def test_the_selection_family_chooses_in_each_fold_and_records_its_leaderboard(
    backtests, candidates: list[str], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A training run of ``selection``: the run's backtest scores the choosing itself (each fold
    chooses on its own training rows), the final choice is the known one, the run's reports hold the
    leaderboard, and the bundle takes each row's entity, time and history."""
    from model_training.train import fit_and_report

    dataset, frame, _ = backtests
    params = {"candidates": candidates, "method": "per_series", "min_errors": 10}
    result = fit_and_report(
        dataset, pd.Timestamp("2024-03-30").date(), frame, "selection", params, devices.CPU, tmp_path
    )
    model = result.model
    assert model.chosen("walk") == ["naive"]  # type: ignore[attr-defined]
    assert model.chosen("daily") != ["naive"]  # type: ignore[attr-defined]
    assert len(result.backtest.folds) == dataset.training.backtest.folds
    assert "leaderboard.csv" in [p.name for p in result.reports]
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    assert sorted(board["candidate"]) == sorted(candidates)
    # Each row brings its entity (the choice is per series), time and history, whatever the candidates.
    assert result.meta["history_column"] == "temp_history"
    assert result.params["param_series_with_own_choice"] == 3


def test_the_bundle_hands_each_rows_entity_to_the_choice(backtests) -> None:  # type: ignore[no-untyped-def]
    """Through the PyFunc's predict, as the gate and the batch forecast call it: the entity reaches the
    choice, so that each series gets its own candidate, not the dataset's."""
    from core.history import with_history
    from model_bundle.outputs import point_forecast
    from model_bundle.pyfunc import ForecastBundle
    from model_training.train import bundle_meta

    dataset, frame, results = backtests
    labels = label_names(dataset)
    models = {
        n: forecasters.create(n, dataset, device=devices.CPU).fit(frame, frame[labels].to_numpy()) for n in CANDIDATES
    }
    choice = choose(results, series_scales(frame, dataset), "per_series", min_errors=10)
    bundle = ForecastBundle()
    bundle.forecaster = SelectedForecaster(models, {n: n for n in CANDIDATES}, choice.default, choice.by_entity, "site")
    bundle.meta, bundle.calibration = bundle_meta(dataset, "selection", per_series=True), None
    newest = with_history(frame.groupby("site").tail(1), frame, dataset)
    output = point_forecast(bundle.predict(None, newest))
    walk = (newest["site"] == "walk").to_numpy()
    np.testing.assert_array_equal(output[walk], models["naive"].predict(newest[walk]))
    assert not np.allclose(output[walk], models["seasonal_naive"].predict(newest[walk]))


def test_a_selection_config_is_checked_when_the_family_is_made(backtests) -> None:  # type: ignore[no-untyped-def]
    dataset = backtests[0]
    with pytest.raises(ValueError, match="method"):
        forecasters.create("selection", dataset, {"method": "vote"}, device=devices.CPU)
    with pytest.raises(ValueError, match="other than selection"):
        forecasters.create("selection", dataset, {"candidates": ["naive", "selection"]}, device=devices.CPU)


def test_candidates_evaluated_apart_choose_as_the_nested_selection_does(backtests, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each candidate evaluated on its own (as the retraining DAG's candidate tasks do, each writing one
    file) and the choice assembled from those files give the run what the selection family computes
    when it chooses inside every fold itself: the same backtest errors, the same choice, the same
    forecasts. Each candidate is reported with its own backtest, best first, and the run's reports
    hold the leaderboard as a table and a chart and the per-series choice."""
    import json

    from core.settings import Settings
    from model_training import candidates
    from model_training.train import fit_and_report

    dataset, frame, _ = backtests
    params = {"candidates": ["naive", "seasonal_naive", "auto_theta"], "method": "combination", "top_k": 2}
    settings = Settings(home=tmp_path / "home")
    written = {
        name: candidates.save(
            candidates.evaluate(frame, dataset, name, devices.CPU), candidates.location(str(tmp_path), name), settings
        )
        for name in params["candidates"]
    }
    assert sorted(Path(p).name for p in written.values()) == ["auto_theta.zip", "naive.zip", "seasonal_naive.zip"]
    evaluations = {name: candidates.load(where, settings) for name, where in written.items()}
    day, reports = pd.Timestamp("2024-03-30").date(), tmp_path / "reports"
    reports.mkdir()
    result = fit_and_report(dataset, day, frame, "selection", params, devices.CPU, reports, evaluations)

    nested = backtest(frame, dataset, lambda: forecasters.create("selection", dataset, params, device=devices.CPU))
    np.testing.assert_allclose(result.backtest.errors()[0], nested.errors()[0], rtol=1e-9)
    reference = forecasters.create("selection", dataset, params, device=devices.CPU)
    reference.fit(frame, frame[label_names(dataset)].to_numpy())
    model = result.model
    assert (model.default, model.choice) == (reference.default, reference.choice)  # type: ignore[attr-defined]
    newest = frame.groupby("site").tail(1)
    np.testing.assert_allclose(
        forecasters.forecast_rows(model, newest, frame, dataset),
        forecasters.forecast_rows(reference, newest, frame, dataset),
        rtol=1e-9,
    )

    assert list(result.candidates) == list(model.leaderboard["candidate"])  # type: ignore[attr-defined]
    for name, report in result.candidates.items():
        assert len(report.backtest.folds) == dataset.training.backtest.folds
        assert sorted(report.mase_by_entity.index) == ["daily", "trend", "walk"]
        # Its own backtest, on the folds every candidate shares.
        np.testing.assert_allclose(
            report.backtest.errors()[0],
            backtest(frame, dataset, lambda n=name: forecasters.create(n, dataset, device=devices.CPU)).errors()[0],
            rtol=1e-9,
        )
    names = {p.name for p in result.reports}
    assert {"leaderboard.csv", "leaderboard.png", "choice.json"} <= names
    choice = json.loads((reports / "choice.json").read_text())
    assert choice == {"default": model.default, "series": model.choice, "combine": "median"}  # type: ignore[attr-defined]
    assert len(choice["series"]["walk"]) == 2, "a combination of each series' top 2"


def test_a_missing_or_stale_candidate_evaluation_is_named(backtests) -> None:  # type: ignore[no-untyped-def]
    from model_training.candidates import evaluate

    dataset, frame, _ = backtests
    selection = forecasters.create(
        "selection", dataset, {"candidates": ["naive", "seasonal_naive"]}, device=devices.CPU
    )
    naive = evaluate(frame, dataset, "naive", devices.CPU)
    with pytest.raises(ValueError, match=r"no evaluation of the candidates \['seasonal_naive'\]"):
        selection.assemble(frame, {"naive": naive})  # type: ignore[attr-defined]
    # An evaluation of other rows (a stale file of another training set) is refused, not misaligned.
    other = evaluate(frame.iloc[:-3], dataset, "seasonal_naive", devices.CPU)
    with pytest.raises(ValueError, match="evaluation of seasonal_naive was made on other rows"):
        selection.assemble(frame, {"naive": naive, "seasonal_naive": other})  # type: ignore[attr-defined]


def test_each_fold_of_the_run_chooses_on_what_that_fold_knew(backtests) -> None:  # type: ignore[no-untyped-def]
    """Candidates built so that ``a`` is best inside every fold's own training rows and ``b`` best on the
    folds of all rows: the final choice is ``b``, while the run's backtest (the choosing, scored) holds
    ``a``'s forecasts in every fold, as a choice made at that fold's time would have."""
    from model_training.backtest import fold_frames
    from model_training.candidates import Evaluation
    from model_training.selection import assemble

    dataset, frame, _ = backtests
    labels = label_names(dataset)

    def off_by(rows: pd.DataFrame, offset: float) -> list[np.ndarray]:
        return [test[labels].to_numpy(dtype=np.float64) + offset for _, _, test in fold_frames(rows, dataset)]

    def candidate(name: str, outer: float, inner: float) -> Evaluation:
        folds = [train for _, train, _ in fold_frames(frame, dataset)]
        model = forecasters.create("naive", dataset, device=devices.CPU)
        return Evaluation(name, off_by(frame, outer), [off_by(train, inner) for train in folds], model, 0.0)

    config = dataset.training.selection_with({"candidates": ["naive", "seasonal_naive"], "method": "best"})
    evaluations = {
        "naive": candidate("a", outer=1.0, inner=0.1),
        "seasonal_naive": candidate("b", outer=0.5, inner=2.0),
    }
    assembled = assemble(frame, dataset, config, evaluations)
    assert assembled.choice.default == ["seasonal_naive"]
    # Every fold chose naive on its inner errors, and its outer errors are what the run scored.
    np.testing.assert_allclose(assembled.backtest.errors()[0], -1.0)
    np.testing.assert_allclose(assembled.candidates["seasonal_naive"].errors()[0], -0.5)


def test_the_leaderboard_counts_the_series_a_candidate_could_not_fit(tmp_path: Path) -> None:
    """A constant series is left out by AutoTheta (it forecasts its last value there), never a failed
    run; the leaderboard says so, and naive, which fits anything, leaves none out."""
    raw = known_series(days=20)
    raw = pd.concat([raw, raw[raw["site"] == "walk"].assign(site="flat", temp=7.0)])
    dataset, frame = labelled(raw, tmp_path)
    params = {"candidates": ["naive", "auto_theta"], "method": "best"}
    model = forecasters.create("selection", dataset, params, device=devices.CPU)
    model.fit(frame, frame[label_names(dataset)].to_numpy())
    board = model.leaderboard.set_index("candidate")  # type: ignore[attr-defined]
    assert board["series_left_out"].to_dict() == {"naive": 0, "auto_theta": 1}


def test_a_selection_is_refitted_with_its_choice_on_every_labelled_row(backtests, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The refit to serve keeps what was chosen on the training rows (each series' candidates, the
    dataset's default, the combination) and fits those candidates again on every labelled row: its
    forecasts are those of the chosen candidates fitted on all the rows."""
    from model_training.candidates import fit
    from model_training.train import fit_and_report

    dataset, frame, _ = backtests
    params = {"candidates": ["naive", "seasonal_naive", "auto_theta"], "method": "per_series", "min_errors": 10}
    training = frame[frame[EVENT_TIMESTAMP] <= frame[EVENT_TIMESTAMP].max() - pd.Timedelta(days=3)]
    day = pd.Timestamp("2024-03-30").date()
    result = fit_and_report(dataset, day, training, "selection", params, devices.CPU, tmp_path, labelled=frame)
    evaluated, refit = result.model, result.refit
    assert refit is not None
    assert isinstance(refit.model, SelectedForecaster)
    assert (refit.model.default, refit.model.choice) == (evaluated.default, evaluated.choice)  # type: ignore[attr-defined]
    assert refit.rows == len(frame) > len(training)
    assert pd.Timestamp(refit.end) == frame[EVENT_TIMESTAMP].max()
    members = {name: fit(frame, dataset, name, devices.CPU) for name in refit.model.members}
    expected = SelectedForecaster(members, refit.model.families, refit.model.default, refit.model.choice, "site")
    newest = frame.groupby("site").tail(1)
    np.testing.assert_allclose(
        forecasters.forecast_rows(refit.model, newest, frame, dataset),
        forecasters.forecast_rows(expected, newest, frame, dataset),
        rtol=1e-9,
    )
    assert refit.bands is result.bands, "the evaluated fit's conformal bands"

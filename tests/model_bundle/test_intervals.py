"""Split-conformal intervals: widths per step and level, per entity where the data allows, as data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from model_bundle.intervals import Calibration, _nan_aware_width, calibrate, conformal_width, level_key

LEVELS = (0.8, 0.95)


def normal_errors(rows: int, scales: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scales, size=(rows, scales.size))


def test_the_width_is_the_corrected_rank_of_the_absolute_errors() -> None:
    errors = np.arange(1.0, 10.0)[:, None] * np.array([1.0, -2.0])  # 9 errors per step, |e| = 1..9 and 2..18
    # ceil((9 + 1) * 0.8) = 8th smallest; at 0.95 the rank (10) passes n: the largest
    np.testing.assert_array_equal(conformal_width(errors, 0.8), [8.0, 16.0])
    np.testing.assert_array_equal(conformal_width(errors, 0.95), [9.0, 18.0])
    # at 0.75 the corrected rank is 8 where the plain quantile's would be ceil(9 * 0.75) = 7: too narrow
    assert math.ceil(9 * 0.75) == 7
    np.testing.assert_array_equal(conformal_width(errors, 0.75), [8.0, 16.0])


def test_bands_hold_the_point_and_widen_with_the_level() -> None:
    scales = np.linspace(1.0, 3.0, 6)
    calibration = calibrate(normal_errors(500, scales, 1), np.array(["a"] * 500), LEVELS, 100)
    point = np.random.default_rng(2).normal(20.0, 5.0, size=(40, 6))
    bands = calibration.bands(point)
    (lo80, hi80), (lo95, hi95) = bands[0.8], bands[0.95]
    assert (lo95 <= lo80).all()
    assert (lo80 <= point).all()
    assert (point <= hi80).all()
    assert (hi80 <= hi95).all()
    assert (hi95 - lo95 > hi80 - lo80).all()
    widths = np.asarray(calibration.widths[level_key(0.8)])
    assert (np.diff(widths) > 0).all(), "errors grow with the step, and so do the bands"


def test_coverage_on_errors_whose_quantiles_are_known() -> None:
    """Normal errors with a known scale per step: the widths come out near the true quantiles and
    fresh errors fall inside at the nominal rate, per step, within two points."""
    scales = np.array([0.5, 1.0, 2.0, 4.0])
    calibration = calibrate(normal_errors(4000, scales, 3), np.zeros(4000).astype(str), LEVELS, 100)
    fresh = normal_errors(100_000, scales, 4)
    for level in LEVELS:
        half = np.asarray(calibration.widths[level_key(level)])
        np.testing.assert_allclose(half, norm.ppf(0.5 + level / 2) * scales, rtol=0.06)
        coverage = (np.abs(fresh) <= half).mean(axis=0)
        np.testing.assert_allclose(coverage, level, atol=0.02)


def test_an_entity_with_enough_errors_gets_its_own_widths_the_others_the_datasets() -> None:
    scales = np.ones(3)
    calm, wild, rare = normal_errors(400, scales, 5), normal_errors(400, 5 * scales, 6), normal_errors(20, scales, 7)
    entities = np.array(["calm"] * 400 + ["wild"] * 400 + ["rare"] * 20)
    calibration = calibrate(np.vstack([calm, wild, rare]), entities, LEVELS, 100)
    assert sorted(calibration.by_entity) == ["calm", "wild"]
    half = calibration.half_widths(0.8, ["calm", "wild", "rare", "never seen"], 4)
    np.testing.assert_allclose(half[1], 5 * half[0], rtol=0.2)
    shared = calibration.widths[level_key(0.8)]
    assert not calibration.entity_level, "the rare entity's 20 origins are too few for a level of its own"
    np.testing.assert_array_equal(half[2], shared)
    np.testing.assert_array_equal(half[3], shared)
    assert half[0][0] < half[1][0]
    # without entities (a caller that cannot name them) every row gets the dataset's
    np.testing.assert_array_equal(calibration.half_widths(0.8, None, 2), [shared, shared])


def test_series_with_few_errors_each_get_bands_as_wide_as_their_own_errors_run() -> None:
    """Many series, each with far too few errors per step for widths of its own (40), half of them
    with errors five times the others': each series' band is the dataset's times its error level, so
    each covers near the nominal rate, where one shared width would over-cover the calm and
    under-cover the wild."""
    scales = np.linspace(1.0, 2.0, 4)
    series = [f"s{i}" for i in range(40)]
    factor = {name: 5.0 if i % 2 else 1.0 for i, name in enumerate(series)}
    errors = np.vstack([normal_errors(40, factor[name] * scales, 10 + i) for i, name in enumerate(series)])
    entities = np.repeat(series, 40)
    calibration = calibrate(errors, entities, [0.9], 100)
    assert not calibration.by_entity
    coverage: dict[float, list[float]] = {1.0: [], 5.0: []}
    for i, name in enumerate(series):
        fresh = normal_errors(4000, factor[name] * scales, 100 + i)
        half = calibration.half_widths(0.9, [name], 1)[0]
        coverage[factor[name]].append(float((np.abs(fresh) <= half).mean()))
    for kind, seen in coverage.items():  # 160 errors a series: its level is known to a few per cent
        assert abs(np.mean(seen) - 0.9) < 0.03, (kind, np.mean(seen))
        assert max(abs(np.asarray(seen) - 0.9)) < 0.1, (kind, seen)
    calm, wild = normal_errors(4000, scales, 1), normal_errors(4000, 5 * scales, 2)
    one_width = calibrate(errors, np.zeros(len(errors)).astype(str), [0.9], 10**6).widths[level_key(0.9)]
    assert (np.abs(calm) <= one_width).mean() > 0.97, "one width for all: far too wide for the calm"
    assert (np.abs(wild) <= one_width).mean() < 0.8, "and too narrow for the wild"
    few = calibrate(errors[::2], entities[::2], [0.9], 100)
    assert not few.entity_level, "20 origins a series: too few for a level of its own"


def test_a_calibration_goes_into_a_folder_as_json_and_comes_back_equal(tmp_path: Path) -> None:
    calibration = calibrate(normal_errors(300, np.ones(2), 8), np.array(["a", "b"] * 150), LEVELS, 100)
    calibration.save(tmp_path)
    assert (tmp_path / "intervals.json").read_text().startswith("{")
    assert Calibration.load(tmp_path) == calibration
    assert Calibration.load(tmp_path / "elsewhere") is None  # a bundle registered without intervals


def test_errors_missing_at_some_steps_still_count_at_the_others() -> None:
    errors = normal_errors(200, np.ones(2), 9)
    errors[:50, 1] = np.nan  # the last rows of a fold have no actual that far ahead
    calibration = calibrate(errors, np.array(["a"] * 200), LEVELS, 100)
    assert calibration.errors_per_step == 150
    assert np.isfinite(calibration.widths[level_key(0.95)]).all()


def test_errors_without_one_entity_per_row_are_refused() -> None:
    with pytest.raises(ValueError, match="one entity per row"):
        calibrate(np.ones((3, 2)), np.array(["a", "b"]), LEVELS, 1)


class _Fixed:
    """A fitted model stand-in that forecasts fixed values (the edge models' contract is predict)."""

    def __init__(self, values: np.ndarray):
        self.values = values

    def predict(self, features: object) -> np.ndarray:
        return self.values


def test_quantile_bands_hold_the_point_and_nest_even_when_the_edge_models_cross() -> None:
    import pandas as pd

    from model_bundle.quantiles import QuantileBands, edges

    assert edges(0.8) == (0.1, 0.9)
    assert edges(0.95) == (0.025, 0.975)
    point = np.array([[10.0, 10.0, 10.0]])
    models = {
        "0.1": _Fixed(np.array([[8.0, 11.0, 9.5]])),  # step 2 crosses above the point
        "0.9": _Fixed(np.array([[12.0, 13.0, 9.0]])),  # step 3 below it
        "0.025": _Fixed(np.array([[9.0, 7.0, 6.0]])),  # step 1 inside the 80% band
        "0.975": _Fixed(np.array([[14.0, 12.0, 15.0]])),  # step 2 inside it
    }
    bands = QuantileBands(levels=LEVELS, family="any", models=models).bands(point, None, pd.DataFrame({"x": [0.0]}))
    assert list(bands) == [0.8, 0.95]
    np.testing.assert_array_equal(bands[0.8][0], [[8.0, 10.0, 9.5]])
    np.testing.assert_array_equal(bands[0.8][1], [[12.0, 13.0, 10.0]])
    np.testing.assert_array_equal(bands[0.95][0], [[8.0, 7.0, 6.0]])
    np.testing.assert_array_equal(bands[0.95][1], [[14.0, 13.0, 15.0]])
    with pytest.raises(ValueError, match="need the feature rows"):
        QuantileBands(levels=LEVELS, family="any", models=models).bands(point)


def movement_rows(steps: np.ndarray) -> pd.DataFrame:
    """Rows whose lags ``x_lag_0..x_lag_3`` zigzag by ``steps`` (each row's mean absolute change)."""
    zigzag = np.array([0.0, 1.0, 0.0, 1.0])
    return pd.DataFrame(steps[:, None] * zigzag, columns=[f"x_lag_{lag}" for lag in range(4)])


def test_adaptive_widths_follow_each_rows_recent_movement() -> None:
    """Errors as wide as the series is moving: half the rows calm (movement 1), half five times as
    lively. One absolute width per step over-covers the calm rows and under-covers the lively ones;
    widths in units of each row's movement cover both at the nominal level, on fresh draws."""
    rng = np.random.default_rng(4)
    moves = np.repeat([1.0, 5.0], 2000)
    columns = tuple(f"x_lag_{lag}" for lag in range(4))
    errors = rng.normal(0.0, 1.0, size=(4000, 3)) * moves[:, None]
    adaptive = calibrate(errors, np.array(["a"] * 4000), LEVELS, 10**6, scales=moves, scale_columns=columns)
    absolute = calibrate(errors, np.array(["a"] * 4000), LEVELS, 10**6)
    fresh = rng.normal(0.0, 1.0, size=(4000, 3)) * moves[:, None]
    rows, calm = movement_rows(moves), moves == 1.0
    for level in LEVELS:
        lower, upper = adaptive.bands(np.zeros((4000, 3)), None, rows)[level]
        inside = (lower <= fresh) & (fresh <= upper)
        assert abs(inside[calm].mean() - level) < 0.02
        assert abs(inside[~calm].mean() - level) < 0.02
        lower, upper = absolute.bands(np.zeros((4000, 3)), None, rows)[level]
        inside = (lower <= fresh) & (fresh <= upper)
        assert inside[calm].mean() > level + 0.04, "one width for all: the calm rows' bands are too wide"
        assert inside[~calm].mean() < level - 0.04, "and the lively rows' too narrow"
    restored = Calibration.from_dict(adaptive.to_dict())
    assert (restored.scale_columns, restored.scale_floor) == (columns, adaptive.scale_floor)
    assert adaptive.scale_floor == pytest.approx(0.1 * 3.0), "a tenth of the median movement"
    flat = restored.row_scales(movement_rows(np.zeros(2)), 2)
    np.testing.assert_array_equal(flat, [[adaptive.scale_floor]] * 2)  # a flat stretch keeps a band
    with pytest.raises(ValueError, match="features"):
        adaptive.bands(np.zeros((1, 3)))
    old = {k: v for k, v in adaptive.to_dict().items() if k not in ("scale_columns", "scale_floor")}
    assert Calibration.from_dict(old).row_scales(None, 2).tolist() == [[1.0], [1.0]], "older bundles: absolute"


def test_with_one_change_among_the_lags_each_series_typical_movement_is_its_unit() -> None:
    """Two lags (a weekly series' defaults): a row's movement is one change, as likely quiet as a
    jump. Each series' typical movement over its calibration rows is then its unit: bands as wide as
    the series is, whatever its last change, covering each series at the level on fresh draws, where
    one change as the unit scatters the widths (and a quiet step blows them up)."""
    rng = np.random.default_rng(11)
    columns = ("x_lag_0", "x_lag_1")
    sizes = {"small": 1.0, "large": 100.0}
    entities = np.repeat(list(sizes), 3000)
    size = np.array([sizes[e] for e in entities])
    errors = rng.normal(0.0, 1.0, size=(6000, 2)) * size[:, None]
    last_change = np.abs(rng.normal(0.0, 1.0, 6000)) * size  # one change: anything from 0 to a jump
    calibration = calibrate(errors, entities, [0.9], 10**6, scales=last_change, scale_columns=columns)
    assert calibration.typical_only
    fresh = rng.normal(0.0, 1.0, size=(6000, 2)) * size[:, None]
    changes = np.abs(rng.normal(0.0, 1.0, 6000)) * size
    rows = pd.DataFrame({"x_lag_0": changes, "x_lag_1": np.zeros(6000)})
    lower, upper = calibration.bands(np.zeros((6000, 2)), list(entities), rows)[0.9]
    inside = (lower <= fresh) & (fresh <= upper)
    for name in sizes:
        assert abs(inside[entities == name].mean() - 0.9) < 0.03, name
    quiet, jump = np.argmin(changes[:3000]), np.argmax(changes[:3000])
    np.testing.assert_allclose(upper[quiet], upper[jump], err_msg="the band does not follow one change")
    # a series that mostly did not move has its mean movement as unit; one never seen, its own movement
    steps = np.zeros(50)
    steps[::10] = 4.0
    stepping = calibrate(errors[:50], np.array(["steps"] * 50), [0.9], 10**6, scales=steps, scale_columns=columns)
    assert stepping.entity_movement == {"steps": pytest.approx(0.4)}
    unseen = stepping.row_scales(pd.DataFrame({"x_lag_0": [5.0], "x_lag_1": [0.0]}), 1, ["new"])
    assert unseen.tolist() == [[5.0]]
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_many_entities_shuffled_get_the_widths_a_mask_per_entity_gives() -> None:
    """Rows of 300 entities in any order, some errors missing, adaptive and plain: each entity's
    widths and movement are those of its own rows picked out one entity at a time."""
    rng = np.random.default_rng(11)
    labels = rng.choice([f"e{n}" for n in range(300)], size=6000)
    errors = rng.normal(0, rng.uniform(0.5, 3, size=(6000, 1)), size=(6000, 4))
    errors[rng.random(errors.shape) < 0.05] = np.nan
    scales = rng.uniform(0.5, 2.0, 6000)
    for columns in ((), ("value_std_7",)):
        got = calibrate(errors, labels, [0.8, 0.95], 10, scales if columns else None, columns)
        units = got.units(scales.reshape(-1, 1), labels.tolist()) if columns else np.ones((6000, 1))
        for entity in sorted(set(labels.tolist())):
            own = (errors / units)[labels == entity]
            if int(np.isfinite(own).sum(axis=0).min()) >= 10:
                for level in (0.8, 0.95):
                    key = level_key(level)
                    np.testing.assert_array_equal(got.by_entity[entity][key], _nan_aware_width(own, level))
            else:
                assert entity not in got.by_entity
            if columns:
                moved = scales[labels == entity]
                assert got.entity_movement[entity] == float(np.median(moved))
        assert len(got.by_entity) > 100

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.dataset import DatasetConfig
from feature_drift.outcomes import DriftOutcome, DriftResult
from model_validation.decision import explain_skip, promotion_allowed
from model_validation.outcomes import GateDecision


def _gate(passed: bool, reason: str) -> GateDecision:
    return GateDecision(
        passed=passed, reason=reason, version="2", challenger_mae=1.0, baseline_mae=2.0, champion_version="1",
        champion_mae=1.1, min_improvement=0.0, champion_bound=1.1, holdout_rows=10, holdout_start="", holdout_end="",
    )  # fmt: skip


def _drift(outcome: DriftOutcome, reason: str = "") -> DriftResult:
    return DriftResult(outcome=outcome, drift_share=None, reason=reason)


def test_force_overrides_the_drift_gate_only() -> None:
    passed, failed = _gate(True, "ok"), _gate(False, "MAE 2 >= naive 1")
    assert promotion_allowed(passed, _drift(DriftOutcome.PASSED))
    assert promotion_allowed(passed, _drift(DriftOutcome.FORCED))
    assert promotion_allowed(passed, _drift(DriftOutcome.NOT_ENOUGH_DATA))
    assert not promotion_allowed(passed, _drift(DriftOutcome.BLOCKED, "share 0.9"))
    assert not promotion_allowed(failed, _drift(DriftOutcome.FORCED))
    assert "champion/challenger gate failed: MAE 2" in explain_skip(failed, _drift(DriftOutcome.PASSED))
    blocked = explain_skip(passed, _drift(DriftOutcome.BLOCKED, "share 0.9"))
    assert blocked == "not promoted: drift gate blocked: share 0.9"


# --- champion/challenger rule -------------------------------------------------------------------


def test_the_gate_judges_each_series_on_its_own_scale_where_a_pooled_mae_hides_the_small_one(
    dataset: DatasetConfig,
) -> None:
    """A series at 100,000 and one at 10: a challenger a little better than seasonal naive on the large
    one and five times worse on the small one wins on the pooled MAE and loses on the mean MASE."""
    from core.columns import EVENT_TIMESTAMP, history_name
    from model_validation.champion import decide, holdout_scales, scaled

    rng = np.random.default_rng(0)
    length = dataset.history_length
    windows = {level: level + level / 100 * rng.normal(0, 1, length).cumsum() for level in (1e5, 10.0)}
    holdout = pd.DataFrame(
        {
            dataset.entity_column: ["large", "small"],
            EVENT_TIMESTAMP: pd.to_datetime(["2024-01-01", "2024-01-01"], utc=True),
            history_name(dataset): [windows[1e5], windows[10.0]],
        }
    )
    scales = holdout_scales(holdout, dataset)
    for entity, level in (("large", 1e5), ("small", 10.0)):
        values = windows[level]
        lag = dataset.seasonal_period
        assert scales[entity] == pytest.approx(np.mean(np.abs(values[lag:] - values[:-lag])))
    challenger = {"large": 0.8 * scales["large"], "small": 5.0 * scales["small"]}
    seasonal = {"large": 1.0 * scales["large"], "small": 1.0 * scales["small"]}
    pooled = {name: float(np.mean(list(maes.values()))) for name, maes in (("c", challenger), ("s", seasonal))}
    assert decide(pooled["c"], {"seasonal naive": pooled["s"]}, None, 0.0)[0], "pooled, the large series decides"
    mase, by_entity = scaled(challenger, scales)
    assert by_entity == pytest.approx({"large": 0.8, "small": 5.0})
    passed, reasons = decide(mase, {"seasonal naive": scaled(seasonal, scales)[0]}, None, 0.0, measure="MASE")
    assert not passed
    assert reasons[0] == "holdout MASE 2.9000 >= seasonal naive 1.0000"


def test_a_challenger_that_is_a_baseline_is_not_asked_to_beat_it() -> None:
    """Where nothing beats the last value, the naive candidate is the champion to have: its forecasts are
    the naive baseline's, so it passes on beating seasonal naive alone, and says so."""
    from model_validation.champion import decide

    maes = {"seasonal naive": 1.5, "naive": 1.2}
    passed, reasons = decide(1.2, maes, None, 0.0, measure="MASE", same_as=("naive",))
    assert passed
    assert reasons[0] == "holdout MASE 1.2000 < seasonal naive 1.5000, = naive 1.2000 (its very forecasts)"
    assert not decide(1.2, maes, None, 0.0, measure="MASE")[0], "equal without being it: not beaten"
    assert not decide(1.6, maes, None, 0.0, same_as=("naive",))[0], "seasonal naive must still be beaten"
    assert not decide(1.2, maes, 1.1, 0.0, same_as=("naive",))[0], "and a better champion kept"


def test_a_constant_series_still_has_a_scale(dataset: DatasetConfig) -> None:
    from core.columns import EVENT_TIMESTAMP, history_name
    from model_validation.champion import holdout_scales

    holdout = pd.DataFrame(
        {
            dataset.entity_column: ["flat"],
            EVENT_TIMESTAMP: pd.to_datetime(["2024-01-01"], utc=True),
            history_name(dataset): [np.full(dataset.history_length, 42.0)],
        }
    )
    assert holdout_scales(holdout, dataset) == {"flat": pytest.approx(42e-6)}


def test_without_a_champion_the_baseline_rule_alone_decides() -> None:
    from model_validation.champion import decide

    both = {"seasonal naive": 1.5, "naive": 1.2}
    assert decide(1.0, both, None, 0.1) == (
        True,
        ["holdout MAE 1.0000 < seasonal naive 1.5000, < naive 1.2000", ANY_REASON],
    )
    passed, reasons = decide(1.6, both, None, 0.1)
    assert not passed
    assert "no champion yet" in reasons[1]


def test_a_challenger_must_beat_every_baseline() -> None:
    """Beating seasonal naive is not enough where the last value is the hard one to beat."""
    from model_validation.champion import decide

    passed, reasons = decide(1.3, {"seasonal naive": 1.5, "naive": 1.2}, None, 0.0)
    assert not passed
    assert reasons[0] == "holdout MAE 1.3000 < seasonal naive 1.5000, >= naive 1.2000"
    # With a champion that beats naive, naive stays demanded: here the challenger is within the
    # (negative) margin of the champion, 1.3 <= 1.15 x 1.2, and fails on naive alone.
    passed, reasons = decide(1.3, {"seasonal naive": 1.5, "naive": 1.2}, 1.15, -0.2)
    assert not passed
    assert reasons[1].startswith("<= champion 1.1500")


def test_a_baseline_the_champion_loses_to_is_not_demanded() -> None:
    """After a change that seasonal naive repeats for free, a retrained model can beat the stale
    champion before it beats seasonal naive: keeping the champion would serve the worse of the two."""
    from model_validation.champion import decide

    baselines = {"seasonal naive": 1.0, "naive": 3.0}
    passed, reasons = decide(1.6, baselines, 2.3, 0.0)
    assert passed
    assert reasons[2] == "the champion loses to seasonal naive on this holdout too: not demanded of the challenger"
    assert not decide(2.4, baselines, 2.3, 0.0)[0]  # it must still beat the champion
    assert not decide(1.6, baselines, 1.7, 0.1)[0]  # by the margin
    # Nothing is waived where the champion beats every baseline.
    passed, reasons = decide(1.1, {"seasonal naive": 1.0, "naive": 3.0}, 0.95, -0.5)
    assert not passed
    assert len(reasons) == 2


def test_a_challenger_must_beat_the_champion_by_the_margin() -> None:
    from model_validation.champion import decide

    naive = {"seasonal naive": 1.5, "naive": 1.6}
    assert decide(0.90, naive, 1.0, 0.1)[0]  # exactly at the bound 1.0 x (1 - 0.1)
    passed, reasons = decide(0.95, naive, 1.0, 0.1)
    assert not passed
    assert reasons[1] == "> champion 1.0000 x (1 - 0.1) = 0.9000"
    # Within a tolerated loss to the champion (a negative margin), still not past a baseline the champion beats.
    assert not decide(0.5, {"seasonal naive": 0.48, "naive": 1.6}, 0.45, -0.2)[0]


def test_the_coverage_rule_is_off_by_default_and_two_sided_when_set() -> None:
    from model_validation.champion import coverage_check

    coverage = {"80": 0.74, "95": 0.96}
    assert coverage_check(coverage, None) == (True, "80% bands cover 74.0%; 95% bands cover 96.0%")
    passed, reason = coverage_check(coverage, 0.05)
    assert not passed  # 6 points under 80%
    assert reason == "80% bands cover 74.0%; 95% bands cover 96.0%: outside 5.0% of nominal at 80%"
    assert coverage_check({"80": 0.86, "95": 0.95}, 0.05)[0] is False  # too wide is a miss too
    assert coverage_check({"80": 0.84, "95": 0.91}, 0.05) == (
        True,
        "80% bands cover 84.0%; 95% bands cover 91.0%: within 5.0%",
    )
    # A version without bands: nothing to report; demanded, it fails.
    assert coverage_check({}, None) == (True, None)
    assert coverage_check({}, 0.05) == (False, "no bands to check coverage against")


def test_holdout_coverage_reads_each_levels_bands_from_the_pyfunc_output(dataset: DatasetConfig) -> None:
    from core.columns import label_names
    from model_validation.champion import holdout_coverage

    labels = label_names(dataset)
    rows = 4
    actual = np.arange(rows * len(labels), dtype=float).reshape(rows, len(labels))
    point = pd.DataFrame(actual, columns=labels)
    # 80% bands miss every actual of the first row (shifted up by 1.5), 95% bands miss none.
    shift = np.where(np.arange(rows)[:, None] == 0, 1.5, 0.0)
    bands = {
        **{f"{c}_lower_80": actual[:, i] + shift[:, 0] - 1 for i, c in enumerate(labels)},
        **{f"{c}_upper_80": actual[:, i] + shift[:, 0] + 1 for i, c in enumerate(labels)},
        **{f"{c}_lower_95": actual[:, i] - 2 for i, c in enumerate(labels)},
        **{f"{c}_upper_95": actual[:, i] + 2 for i, c in enumerate(labels)},
    }
    output = pd.concat([point, pd.DataFrame(bands)], axis=1)
    holdout = pd.DataFrame(actual, columns=labels)
    assert holdout_coverage(output, holdout, dataset) == {"80": 0.75, "95": 1.0}
    assert holdout_coverage(point, holdout, dataset) == {}  # a point-only version


def test_naive_is_seasonal_naive_of_period_one(dataset: DatasetConfig) -> None:
    """The last value for every step; seasonal naive the value one season back (the dataset's 24 hours)."""
    from model_training.forecasters import baselines

    naive, seasonal = baselines(dataset)["naive"], baselines(dataset)["seasonal naive"]
    assert naive.columns == ["temp_lag_0"] * dataset.horizon
    assert seasonal.columns[0] == "temp_lag_23"  # step 1 repeats the hour a day before it
    assert seasonal.columns[-1] == f"temp_lag_{24 - dataset.horizon}"


class _AnyReason:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and "baseline rule decides" in other


ANY_REASON = _AnyReason()


# --- holdout ------------------------------------------------------------------------------------


def test_the_holdout_is_the_newest_span_and_no_training_label_reaches_into_it(dataset: DatasetConfig) -> None:
    from core.columns import EVENT_TIMESTAMP
    from feature_store.training_set import fingerprint, split_holdout
    from tests.utils.data import training_frame

    frame = training_frame(dataset)
    training, holdout = split_holdout(frame, dataset)
    step = dataset.frequency.fixed
    assert holdout[EVENT_TIMESTAMP].min() == frame[EVENT_TIMESTAMP].max() - dataset.promotion.holdout + step
    assert holdout[EVENT_TIMESTAMP].max() == frame[EVENT_TIMESTAMP].max()
    # the last training row's last label is the target at the holdout's first timestamp, no later
    assert training[EVENT_TIMESTAMP].max() + dataset.horizon * step == holdout[EVENT_TIMESTAMP].min()
    assert len(holdout) == 2 * dataset.promotion.holdout / step  # two entities, one row per hour
    assert fingerprint(training) == fingerprint(training.copy()) != fingerprint(holdout)
    with pytest.raises(ValueError, match="more history or a shorter holdout"):
        split_holdout(holdout, dataset)


# --- drift ------------------------------------------------------------------------------------


def _features(raw: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    from feature_store.features import build_features

    raw = raw.copy()
    raw["ts"] = pd.to_datetime(raw["ts"], utc=True)
    return build_features(raw, dataset)


def _windows(  # type: ignore[no-untyped-def]
    dataset: DatasetConfig,
    shift: dict[str, float],
    entity: str = "site_0",
    regime_change: bool = False,
    days: int = 7,
):
    """(reference, current week) of :func:`synthetic_frame`'s features; over the last ``days``, ``entity``'s
    columns moved by ``shift``, or its regime changed (:func:`change_regime`)."""
    import pandas as pd

    from core.columns import EVENT_TIMESTAMP
    from tests.utils.data import change_regime, synthetic_frame

    raw = synthetic_frame()
    recent = (pd.to_datetime(raw["ts"]) > pd.to_datetime(raw["ts"]).max() - pd.Timedelta(days=days)) & (
        raw["site"] == entity
    )
    for column, delta in shift.items():
        raw.loc[recent, column] += delta
    if regime_change:
        raw = change_regime(raw, recent)
    features = _features(raw, dataset)
    cut = features[EVENT_TIMESTAMP].max() - pd.Timedelta(days=7)
    return features[features[EVENT_TIMESTAMP] <= cut], features[features[EVENT_TIMESTAMP] > cut]


def test_a_shifted_feature_is_flagged_for_its_entity_only(dataset: DatasetConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from feature_drift.measure import compare_windows

    clean = compare_windows(*_windows(dataset, {}), dataset, tmp_path / "clean")
    reported = dataset.model_copy(update={"promotion": dataset.promotion.model_copy(update={"drift_reports": 1})})
    verdicts = compare_windows(*_windows(dataset, {"aux": 3.0}), reported, tmp_path)
    added = set(verdicts["site_0"].drifted_features) - set(clean["site_0"].drifted_features)
    assert added == {"aux_lag_0", "aux_lag_1"}
    assert verdicts["site_1"].drifted_features == clean["site_1"].drifted_features
    assert not {"aux_lag_0", "aux_lag_1"} & set(clean["site_0"].drifted_features)
    share = verdicts["site_0"].drift_share
    assert share == pytest.approx(len(verdicts["site_0"].drifted_features) / len(verdicts["site_0"].scores))
    assert verdicts["site_0"].scores["aux_lag_0"] > 1.0 > verdicts["site_1"].scores["aux_lag_0"]
    assert "aux_lag_0" in (tmp_path / "drift_site_0.html").read_text()


def _evidently_on_pandas(ref: pd.DataFrame, cur: pd.DataFrame, columns: list[str], dataset: DatasetConfig) -> dict:  # type: ignore[type-arg]
    """Evidently's test of each column on one entity's rows as pandas selects them: the type inferred
    from the current rows, the configured method for a number, each column's finite values."""
    from evidently.core.datasets import infer_column_type
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    scores = {}
    for column in columns:
        kind = infer_column_type(cur[column])
        method = dataset.promotion.drift_method if kind is ColumnType.Numerical else None
        r, c = (frame[column].replace([-np.inf, np.inf], np.nan).dropna() for frame in (ref, cur))
        test = get_stattest(r, c, kind, method)
        scores[column] = float(test(r, c, kind, dataset.promotion.drift_threshold).drift_score)
    return scores


def test_many_entities_interleaved_get_each_its_own_verdict(dataset: DatasetConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rows of many entities in any order, an integer column of few values (a test for categories), a
    value that is not finite, an entity in one window only and one below the minimum rows: each
    entity's scores are Evidently's on its own rows, as pandas would select them one by one."""
    from feature_drift.measure import compare_windows, drift_columns, drift_view

    reference, current = _windows(dataset, {"aux": 3.0})
    copies = []
    for copy in range(4):  # site_0 and site_1 as eight entities, each copy moved by its own amount
        for frame in (reference, current):
            moved = frame.assign(**{dataset.entity_column: frame[dataset.entity_column] + f"_{copy}"})
            moved["aux_lag_0"] += copy * (frame is current)
            copies.append(moved)
    reference = pd.concat(copies[0::2], ignore_index=True).sample(frac=1.0, random_state=1)
    current = pd.concat(copies[1::2], ignore_index=True).sample(frac=1.0, random_state=2)
    for frame in (reference, current):  # a handful of values
        frame["aux_lag_1"] = (frame["aux_lag_1"].fillna(0.0) * 2).round().clip(-2, 2).astype(int)
    current.loc[current.index[:3], "aux_lag_0"] = np.inf
    current = current[current[dataset.entity_column] != "site_1_3"]  # in the reference alone
    short = current[current[dataset.entity_column] == "site_0_3"].index[dataset.promotion.min_drift_rows - 1 :]
    current = current.drop(short)  # one row below the minimum

    verdicts = compare_windows(reference, current, dataset, tmp_path)
    columns = drift_columns(dataset)
    assert sorted(verdicts) == sorted(f"site_{s}_{c}" for s in (0, 1) for c in range(4))
    assert verdicts["site_1_3"].drift_share is None
    assert verdicts["site_1_3"].current_rows == 0
    assert verdicts["site_0_3"].drift_share is None
    assert verdicts["site_0_3"].current_rows == dataset.promotion.min_drift_rows - 1
    key = dataset.entity_column
    ref_view, cur_view = (drift_view(f, dataset).dropna(subset=columns) for f in (reference, current))
    judged = [e for e in verdicts if verdicts[e].drift_share is not None]
    assert len(judged) == 6
    for entity in judged:
        ref, cur = ref_view[ref_view[key] == entity], cur_view[cur_view[key] == entity]
        assert verdicts[entity].scores == _evidently_on_pandas(ref, cur, columns, dataset), entity
        assert (verdicts[entity].reference_rows, verdicts[entity].current_rows) == (len(ref), len(cur))
    assert verdicts["site_0_2"].scores["aux_lag_0"] > verdicts["site_0_0"].scores["aux_lag_0"]


def test_a_regime_change_is_drift_and_a_clean_week_is_not(dataset: DatasetConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from feature_drift.measure import compare_windows

    # loads up by 6 MW, the target follows (it is 0.8 x load in this data), and its swings triple
    reference, current = _windows(dataset, {}, regime_change=True)
    shifted = compare_windows(reference, current, dataset, tmp_path / "shifted")
    assert shifted["site_0"].drift_share is not None
    assert shifted["site_0"].drift_share > 0.5
    reference, current = _windows(dataset, {})
    clean = compare_windows(reference, current, dataset, tmp_path / "clean")
    assert all(v.drift_share is not None and v.drift_share <= 0.5 for v in clean.values()), clean


def test_one_entity_shifted_alone_blocks_the_gate_and_flags_only_that_entity(  # type: ignore[no-untyped-def]
    dataset: DatasetConfig, settings, tmp_path
) -> None:
    """The gate's verdict is its worst entity's: a shift of one transformer is not averaged away by
    the others, and its neighbour keeps a clean verdict of its own."""
    from core.columns import EVENT_TIMESTAMP
    from feature_drift.measure import drift_gate
    from feature_store.features import offline_source_path

    reference, current = _windows(dataset, {}, entity="site_1", regime_change=True)
    source = offline_source_path(settings, dataset)
    source.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([reference, current]).to_parquet(source)
    day = current[EVENT_TIMESTAMP].max().date()
    result = drift_gate(settings, dataset, day, reference, tmp_path / "gate")
    shifted, neighbour = result.entities["site_1"].drift_share, result.entities["site_0"].drift_share
    assert shifted is not None
    assert neighbour is not None
    assert shifted > dataset.promotion.max_drift_share >= neighbour
    assert result.outcome is DriftOutcome.BLOCKED
    assert result.drift_share == shifted
    assert result.drifted
    assert "drifted: site_1:" in result.reason
    assert "site_0:" not in result.reason.split("drifted:")[1]


def test_with_many_series_the_gate_counts_the_share_of_drifted_ones(  # type: ignore[no-untyped-def]
    dataset: DatasetConfig, settings, tmp_path
) -> None:
    """Twelve series: one whose regime changed drifts alone (1 of 12, under the 10% that may), and the
    gate passes naming it; a second one drifting too (2 of 12) blocks. The reason names the ten most
    drifted series and counts the others, however many there are."""
    from core.columns import EVENT_TIMESTAMP
    from feature_drift.measure import drift_gate
    from feature_store.features import offline_source_path

    changed = pd.concat(_windows(dataset, {}, entity="site_1", regime_change=True))
    calm = changed[changed["site"] == "site_0"]
    source = offline_source_path(settings, dataset)
    source.parent.mkdir(parents=True, exist_ok=True)

    def judged(shifted: int) -> DriftResult:
        moved = [changed[changed["site"] == "site_1"].assign(site=f"moved_{n}") for n in range(shifted)]
        steady = [calm.assign(site=f"steady_{n}") for n in range(12 - shifted)]
        rows = pd.concat([*moved, *steady], ignore_index=True)
        rows.to_parquet(source)
        cut = rows[EVENT_TIMESTAMP].max() - pd.Timedelta(days=7)
        day = rows[EVENT_TIMESTAMP].max().date()
        return drift_gate(settings, dataset, day, rows[rows[EVENT_TIMESTAMP] <= cut], tmp_path / str(shifted))

    one = judged(1)
    assert one.drifted_entities == ["moved_0"], one.reason
    assert one.outcome is DriftOutcome.PASSED
    assert not one.drifted
    assert "1 of 12 entities above it, 8%; drift counts above 10%" in one.reason
    assert one.reason.count("steady_") == 9, "ten named, the most drifted first"
    assert "and 2 more" in one.reason
    two = judged(2)
    assert sorted(two.drifted_entities) == ["moved_0", "moved_1"]
    assert two.outcome is DriftOutcome.BLOCKED
    assert two.drifted
    assert "drifted: moved_" in two.reason


def test_a_level_that_moves_on_is_not_drift_but_wider_swings_are(dataset: DatasetConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The target of site_0 a long way up since before the current week (further back than its longest
    lag): its raw lags and means all drift, the changes from its current value (what the models see) do
    not; with raw levels configured it is drift. Wider swings are drift either way."""
    from feature_drift.measure import RELATIVE, compare_windows, drift_columns

    assert "temp_lag_0" not in drift_columns(dataset)
    assert {"temp_lag_1" + RELATIVE, "temp_mean_24" + RELATIVE, "temp_std_24", "load_lag_0"} <= set(
        drift_columns(dataset)
    )
    reference, current = _windows(dataset, {"temp": 30.0}, days=15)
    moved = compare_windows(reference, current, dataset, tmp_path / "moved")["site_0"]
    assert moved.drift_share is not None
    assert moved.drift_share <= dataset.promotion.max_drift_share, moved.drifted_features
    raw = dataset.model_copy(
        update={"promotion": dataset.promotion.model_copy(update={"drift_relative_levels": False})}
    )
    assert "temp_lag_0" in drift_columns(raw)
    absolute = compare_windows(reference, current, raw, tmp_path / "raw")["site_0"]
    assert (absolute.drift_share or 0.0) > dataset.promotion.max_drift_share
    assert {"temp_lag_0", "temp_lag_1", "temp_lag_168", "temp_mean_24"} <= set(absolute.drifted_features)
    swings = compare_windows(*_windows(dataset, {}, regime_change=True), dataset, tmp_path / "swings")["site_0"]
    assert (swings.drift_share or 0.0) > dataset.promotion.max_drift_share
    assert "temp_lag_1" + RELATIVE in swings.drifted_features


def test_small_windows_give_no_verdict(dataset: DatasetConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from feature_drift.measure import compare_windows

    reference, current = _windows(dataset, {}, regime_change=True)
    few = current.groupby("site").head(dataset.promotion.min_drift_rows - 1)
    verdicts = compare_windows(reference, few, dataset, tmp_path)
    assert {v.drift_share for v in verdicts.values()} == {None}
    assert not list(tmp_path.glob("*.html"))


def test_a_holdout_can_start_where_a_change_began_within_the_configured_span(dataset: DatasetConfig) -> None:
    """From the drift monitor's streak start: never longer than configured, never shorter than a day;
    training still ends one horizon before it."""
    from core.columns import EVENT_TIMESTAMP
    from feature_store.training_set import split_holdout
    from tests.utils.data import training_frame

    frame = training_frame(dataset)
    newest = frame[EVENT_TIMESTAMP].max()

    def starts(start: date | None) -> tuple[pd.Timestamp, pd.Timestamp]:
        training, holdout = split_holdout(frame, dataset, start)
        horizon = dataset.horizon * dataset.frequency.fixed
        assert training[EVENT_TIMESTAMP].max() == holdout[EVENT_TIMESTAMP].min() - horizon
        return holdout[EVENT_TIMESTAMP].min(), training[EVENT_TIMESTAMP].max()

    configured = newest - dataset.promotion.holdout + dataset.frequency.fixed
    assert starts(None)[0] == configured
    two_days_ago = (newest - pd.Timedelta(days=2)).date()
    assert starts(two_days_ago)[0] == pd.Timestamp(two_days_ago, tz="UTC")
    assert starts(date(2020, 1, 1))[0] == configured  # a streak older than the holdout: as configured
    assert starts(newest.date() + pd.Timedelta(days=3))[0] == newest - pd.Timedelta(days=1) + dataset.frequency.fixed


def test_the_reference_is_each_entitys_newest_span_before_the_window_judged(dataset: DatasetConfig) -> None:
    """Per entity (a series that stopped early keeps its own newest rows), never a row at or after the
    current window's start."""
    from core.columns import EVENT_TIMESTAMP
    from feature_drift.measure import reference_before
    from tests.utils.data import training_frame

    frame = training_frame(dataset)
    stamps = frame[EVENT_TIMESTAMP]
    stopped = (frame["site"] == "site_1") & (stamps > stamps.max() - pd.Timedelta(days=10))
    frame = frame[~stopped]
    start = stamps.max() - pd.Timedelta(days=2)
    reference = reference_before(frame, start, dataset)
    span = dataset.promotion.drift_reference_span
    for site, newest in {
        "site_0": start - dataset.frequency.fixed,
        "site_1": frame[frame["site"] == "site_1"][EVENT_TIMESTAMP].max(),
    }.items():
        rows = reference[reference["site"] == site][EVENT_TIMESTAMP]
        assert rows.max() == newest
        assert rows.min() == newest - span + dataset.frequency.fixed
    assert (reference[EVENT_TIMESTAMP] < start).all()


def test_the_gate_judged_a_part_of_series_at_a_time_gives_the_verdict_of_one_judgement(  # type: ignore[no-untyped-def]
    dataset: DatasetConfig, settings, tmp_path
) -> None:
    """Twelve series, three of them moved, judged three at a time from the feature table (sorted by
    series, in small row groups) and against rows read back from it: the same verdict, entity by
    entity, counts, spans and reasons, as all judged at once from frames held whole; the reports are
    those of the most drifted, wherever their part."""
    from core.columns import EVENT_TIMESTAMP
    from feature_drift.measure import drift_gate, evidence_of
    from feature_store.features import feature_table_location, offline_source_path

    changed = pd.concat(_windows(dataset, {}, entity="site_1", regime_change=True))
    moved = [changed[changed["site"] == "site_1"].assign(site=f"moved_{n}") for n in range(3)]
    steady = [changed[changed["site"] == "site_0"].assign(site=f"steady_{n}") for n in range(9)]
    rows = pd.concat([*steady, *moved], ignore_index=True).sort_values(["site", EVENT_TIMESTAMP], ignore_index=True)
    source = offline_source_path(settings, dataset)
    source.parent.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(source, row_group_size=len(rows) // 12)
    end = rows[EVENT_TIMESTAMP].max() - pd.Timedelta(days=7)
    day = rows[EVENT_TIMESTAMP].max().date()
    reporting = dataset.model_copy(update={"promotion": dataset.promotion.model_copy(update={"drift_reports": 2})})

    whole = drift_gate(settings, reporting, day, rows[rows[EVENT_TIMESTAMP] <= end], tmp_path / "whole")
    evidence = evidence_of(feature_table_location(settings, dataset), end, reporting)
    parts = drift_gate(settings, reporting, day, evidence, tmp_path / "parts", per_part=3)

    assert whole.outcome is DriftOutcome.BLOCKED, whole.reason
    assert sorted(whole.drifted_entities) == ["moved_0", "moved_1", "moved_2"]
    assert len(whole.judged) == 12

    def named(result: DriftResult) -> dict[str, object]:
        plain = result.model_dump()
        for verdict in plain["entities"].values():
            verdict["report_path"] = verdict["report_path"] and Path(verdict["report_path"]).name
        return plain

    assert named(parts) == named(whole)
    assert [Path(p).name for p in parts.report_paths] == [Path(p).name for p in whole.report_paths]
    assert len(parts.report_paths) == 2
    assert all(Path(p).is_file() and Path(p).parent == tmp_path / "parts" for p in parts.report_paths)


def test_the_window_judged_is_never_part_of_its_reference(dataset: DatasetConfig, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A version fit on every row up to the newest (a refit) is judged on its rows before the current
    window: a change inside the window is drift, not a window compared with itself."""
    from core.columns import EVENT_TIMESTAMP
    from feature_drift.measure import drift_gate
    from feature_store.features import offline_source_path

    reference, current = _windows(dataset, {}, regime_change=True, days=2)  # younger than the window
    every_row = pd.concat([reference, current])
    source = offline_source_path(settings, dataset)
    source.parent.mkdir(parents=True, exist_ok=True)
    every_row.to_parquet(source)
    result = drift_gate(settings, dataset, current[EVENT_TIMESTAMP].max().date(), every_row, tmp_path / "gate")
    assert result.reference_end < result.current_start
    assert pd.Timestamp(result.current_start) - pd.Timestamp(result.reference_end) == dataset.frequency.fixed
    assert result.outcome is DriftOutcome.BLOCKED, result.reason
    assert (result.entities["site_0"].drift_share or 0.0) > dataset.promotion.max_drift_share
    assert (result.entities["site_1"].drift_share or 0.0) <= dataset.promotion.max_drift_share, result.reason


def test_the_calibration_score_is_evidentlys_and_flags_by_threshold(dataset: DatasetConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from feature_drift.measure import measure_drift
    from model_validation.drift import calibrate_threshold, normed_wasserstein

    reference, current = _windows(dataset, {}, regime_change=True)
    ref, cur = reference[reference["site"] == "site_0"], current[current["site"] == "site_0"]
    columns = ["load_lag_0", "temp_lag_0", "aux_lag_0"]
    _, scores, _ = measure_drift(ref, cur, columns, dataset)
    for column in columns:
        assert normed_wasserstein(ref[column], cur[column]) == pytest.approx(scores[column], rel=1e-9)
    rates = calibrate_threshold(reference, dataset, [0.0, 1e9])
    assert rates == {"site_0": {0.0: 1.0, 1e9: 0.0}, "site_1": {0.0: 1.0, 1e9: 0.0}}


@pytest.mark.parametrize("method", ["wasserstein", "psi", None])
def test_the_drift_figures_are_those_of_evidentlys_drift_preset(dataset: DatasetConfig, method: str | None) -> None:
    """The figures are Evidently's tests called without its report; they must be what its
    DataDriftPreset reports: the share, each column's score and the drifted columns, the configured
    method on numbers and Evidently's choice for a column it reads as categories (few integers)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    from feature_drift.measure import measure_drift

    config = dataset.promotion.model_copy(update={"drift_method": method, "drift_threshold": 0.5 if method else None})
    dataset = dataset.model_copy(update={"promotion": config})
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "c": rng.integers(0, 4, 400)})
    current = pd.DataFrame({"a": rng.normal(0.8, size=150), "b": rng.normal(size=150), "c": rng.integers(1, 6, 150)})
    columns = ["a", "b", "c"]
    preset = DataDriftPreset(columns=columns, num_method=method, threshold=config.drift_threshold)
    report = Report([preset], include_tests=True).run(reference_data=reference, current_data=current).dict()
    share = next(m["value"]["share"] for m in report["metrics"] if m["config"]["type"].endswith("DriftedColumnsCount"))
    scores = {
        m["config"]["column"]: m["value"] for m in report["metrics"] if m["config"]["type"].endswith("ValueDrift")
    }
    drift_tests = [t for t in report["tests"] if t["metric_config"]["params"]["type"].endswith("ValueDrift")]
    failed = sorted(t["metric_config"]["params"]["column"] for t in drift_tests if t["status"] == "FAIL")

    ours = measure_drift(reference, current, columns, dataset)
    assert ours == (share, pytest.approx(scores, rel=1e-12), failed)
    assert "a" in failed
    assert "b" not in failed


def test_reports_are_drawn_for_the_entities_with_the_largest_shares_only(dataset: DatasetConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A report draws a figure per feature (seconds an entity): thousands of series get their figures
    recorded, and reports only where a reader looks first."""
    from feature_drift.measure import compare_windows

    reference, current = _windows(dataset, {}, entity="site_1", regime_change=True)
    limit = dataset.promotion.model_copy(update={"drift_reports": 1})
    one = compare_windows(reference, current, dataset.model_copy(update={"promotion": limit}), tmp_path / "one")
    assert (one["site_1"].drift_share or 0.0) > (one["site_0"].drift_share or 0.0)
    assert [name for name, e in one.items() if e.report_path] == ["site_1"]
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["drift_site_1.html"]
    assert one["site_0"].scores, "every entity's figures, reported or not"
    none = dataset.promotion.model_copy(update={"drift_reports": 0})
    quiet = compare_windows(reference, current, dataset.model_copy(update={"promotion": none}), tmp_path / "none")
    assert [e.report_path for e in quiet.values()] == [None, None]
    assert {name: e.drift_share for name, e in quiet.items()} == {name: e.drift_share for name, e in one.items()}


def test_a_metric_per_series_up_to_a_hundred_series_none_past_them() -> None:
    """The gate's run gets a metric per series for a few series; past
    ``ENTITY_METRICS_UP_TO``, none (MLflow reads a run's metrics one key at a time): its decision
    file holds every series' figures."""
    from model_registry.tracking import ENTITY_METRICS_UP_TO
    from model_validation.champion import per_entity

    few = {f"s{n}": float(n) for n in range(ENTITY_METRICS_UP_TO)}
    assert per_entity(few) == few
    assert per_entity({**few, "one more": 1.0}) == {}

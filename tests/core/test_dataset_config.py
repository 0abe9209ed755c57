from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from core.dataset import DatasetConfig, Layout
from tests.utils.data import ETT_CONFIG, synthetic_config


def test_ett_config_describes_two_hourly_transformers() -> None:
    ett = DatasetConfig.from_yaml(ETT_CONFIG)
    assert ett.source.layout is Layout.WIDE_PER_ENTITY
    assert set(ett.source.uris) == {"ETTh1", "ETTh2"}
    assert ett.frequency.fixed == timedelta(hours=1)
    assert (ett.target, ett.horizon, ett.seasonal_period) == ("OT", 24, 24)
    for uri in ett.source.uris.values():
        assert Path(ett.resolve_uri(uri)).is_file()


def test_default_target_lags_cover_one_season_and_a_week() -> None:
    ett = DatasetConfig.from_yaml(ETT_CONFIG)
    assert ett.target_lags == [*range(24), 168]


def _write(tmp_path: Path, **changes: object) -> Path:
    config = synthetic_config("series.csv")
    config.update(changes)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_gap_shorter_than_horizon_is_refused(tmp_path: Path) -> None:
    bad = synthetic_config("x.csv")["training"]
    assert isinstance(bad, dict)
    bad["backtest"]["gap"] = 2
    with pytest.raises(ValidationError, match="gap"):
        DatasetConfig.from_yaml(_write(tmp_path, training=bad))


def test_target_lags_without_a_whole_season_are_refused_when_the_config_loads(tmp_path: Path) -> None:
    """Seasonal naive, the baseline of every gate, forecasts from lags 0..m-1: a config without them
    would fail at its first training, after ingest, checks and features."""
    engineering = synthetic_config("x.csv")["feature_engineering"]
    assert isinstance(engineering, dict)
    engineering["target_lags"] = [0, 1, 2, 23, 24]
    with pytest.raises(ValidationError, match=r"target_lags must hold 0\.\.23 .*missing \[3, 4, 5,"):
        DatasetConfig.from_yaml(_write(tmp_path, seasonal_period=24, feature_engineering=engineering))
    engineering["target_lags"] = [*range(24), 168]
    loaded = DatasetConfig.from_yaml(_write(tmp_path, seasonal_period=24, feature_engineering=engineering))
    assert loaded.target_lags == [*range(24), 168]


def test_long_layout_needs_a_uri(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs 'uri'"):
        DatasetConfig.from_yaml(_write(tmp_path, source={"layout": "long"}))


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="horizn"):
        DatasetConfig.from_yaml(_write(tmp_path, horizn=3))


def test_value_ranges_must_name_known_columns(tmp_path: Path) -> None:
    quality = synthetic_config("x.csv")["quality"]
    assert isinstance(quality, dict)
    quality["value_ranges"] = {"nope": [0, 1]}
    with pytest.raises(ValidationError, match="nope"):
        DatasetConfig.from_yaml(_write(tmp_path, quality=quality))


def test_relative_uris_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = DatasetConfig.from_yaml(_write(tmp_path))
    assert config.resolve_uri("series.csv") == str(tmp_path.resolve() / "series.csv")
    assert config.resolve_uri("s3://bucket/key.csv") == "s3://bucket/key.csv"

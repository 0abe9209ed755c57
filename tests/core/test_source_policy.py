"""The source policy: what a dataset config may make ingest read, checked at load and at read time."""

from __future__ import annotations

import argparse
import os
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from core.cli import add_common_args
from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Profile, Settings
from core.source_policy import SourcePolicyError, check, parse
from data_pipeline.ingest import ingest
from data_pipeline.sources import read_bytes
from tests.utils.data import ETT_CONFIG, SYNTHETIC_END, synthetic_config, synthetic_frame

SECRET = "id,password\n1,hunter2\n"


def policy(tmp_path: Path, **values: Any) -> Settings:
    """Local sources under ``tmp_path/data`` only, S3 from bucket ``raw`` only."""
    chosen: dict[str, Any] = {"source_roots": [tmp_path / "data"], "source_buckets": ["raw"], **values}
    return Settings(home=tmp_path / "home", _env_file=None, **chosen)  # type: ignore[call-arg]


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """``data/series.csv`` inside the root, ``secret.csv`` next to it, outside."""
    (tmp_path / "data").mkdir()
    synthetic_frame().to_csv(tmp_path / "data" / "series.csv", index=False)
    (tmp_path / "secret.csv").write_text(SECRET)
    return tmp_path


def write_config(folder: Path, name: str = "synthetic", **source: object) -> Path:
    config = {**synthetic_config("series.csv"), "name": name}
    config["source"] = {"layout": "long", "format": "csv", **source}
    path = folder / f"{name.replace('/', '_')}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_sources_inside_the_roots_and_listed_buckets_pass(layout: Path) -> None:
    settings = policy(layout)
    inside = layout / "data" / "series.csv"
    assert check(str(inside), settings).path == inside.resolve()
    assert check(inside.as_uri(), settings).path == inside.resolve()
    assert check(f"{layout}/data/sub/../series.csv", settings).path == inside.resolve()
    from_s3 = check("s3://raw/2024/series.csv", settings)
    assert (from_s3.bucket, from_s3.key, from_s3.path) == ("raw", "2024/series.csv", None)
    assert read_bytes(str(inside), settings) == inside.read_bytes()


HOSTILE = {
    "absolute path outside": ("{root}/secret.csv", "outside the allowed source roots"),
    "system file": ("/etc/passwd", "outside the allowed source roots"),
    "file URI outside": ("file:///etc/passwd", "outside the allowed source roots"),
    "file URI with a host": ("file://attacker.example/share/x.csv", "never a host"),
    "dot-dot out of the root": ("{root}/data/../secret.csv", "outside the allowed source roots"),
    "encoded dot-dot": ("file://{root}/data/%2e%2e/secret.csv", "outside the allowed source roots"),
    "instance metadata": ("http://169.254.169.254/latest/meta-data/iam/", "scheme 'http' is not allowed"),
    "https": ("https://example.com/x.csv", "scheme 'https' is not allowed"),
    "ftp": ("ftp://example.com/x.csv", "scheme 'ftp' is not allowed"),
    "data URI": ("data:text/csv,a", "scheme 'data' is not allowed"),
    "another bucket": ("s3://mlflow/artifacts/1/model.ubj", "bucket 'mlflow' is not allowed (only ['raw']"),
    "bucket dot-dot": ("s3://raw/../mlflow/artifacts/x", "without '.' or '..' segments"),
    "bucket with credentials": ("s3://key:secret@raw/x.csv", "is not an S3 bucket name"),
    "no bucket": ("s3:///x.csv", "is not an S3 bucket name"),
    "query": ("s3://raw/x.csv?versionId=1", "a query or fragment is not allowed"),
    "NUL byte": ("{root}/data/series.csv\x00.txt", "NUL byte"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_uris_are_refused_naming_the_uri_and_what_is_allowed(layout: Path, case: str) -> None:
    template, expected = HOSTILE[case]
    uri = template.format(root=layout)
    with pytest.raises(SourcePolicyError) as refused:
        read_bytes(uri, policy(layout))
    message = str(refused.value)
    assert expected in message
    assert repr(uri) in message


def test_a_symlink_inside_the_root_cannot_point_out_of_it(layout: Path) -> None:
    link = layout / "data" / "innocent.csv"
    link.symlink_to(layout / "secret.csv")
    with pytest.raises(SourcePolicyError, match=r"resolves to .*secret\.csv, outside the allowed source roots"):
        read_bytes(str(link), policy(layout))
    # A root that is itself a link is taken as its target.
    (layout / "linked").symlink_to(layout / "data")
    settings = policy(layout, source_roots=[layout / "linked"])
    assert read_bytes(str(layout / "data" / "series.csv"), settings).startswith(b"site,")


def test_the_allowed_schemes_are_a_setting(layout: Path) -> None:
    inside = str(layout / "data" / "series.csv")
    with pytest.raises(SourcePolicyError, match=r"local sources are not allowed .*MLOPS_SOURCE_SCHEMES=\['s3'\]"):
        check(inside, policy(layout, source_schemes=["s3"]))
    with pytest.raises(SourcePolicyError, match=r"s3:// sources are not allowed"):
        check("s3://raw/x.csv", policy(layout, source_schemes=["file"]))
    with pytest.raises(ValidationError):
        policy(layout, source_schemes=["http"])


def test_defaults_allow_the_projects_data_and_no_bucket(tmp_path: Path) -> None:
    default = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert default.source_buckets == []
    with pytest.raises(SourcePolicyError, match="none are allowed"):
        check("s3://raw/x.csv", default)
    assert PROJECT_ROOT / "data" in default.allowed_source_roots
    assert DatasetConfig.from_yaml(ETT_CONFIG, default).name == "ett"  # the whole policy, at load
    with pytest.raises(SourcePolicyError, match="outside the allowed source roots"):
        check(str(PROJECT_ROOT / ".env"), default)
    compose = Settings(profile=Profile.COMPOSE, home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert compose.source_buckets == ["raw"]


def test_a_config_naming_a_forbidden_source_fails_at_load(layout: Path) -> None:
    settings = policy(layout)
    config = write_config(layout / "data", uri="../secret.csv")
    with pytest.raises(SourcePolicyError) as refused:
        DatasetConfig.from_yaml(config, settings)
    message = str(refused.value)
    assert str(config) in message
    assert "source.uri = '../secret.csv'" in message
    assert str(layout / "data") in message  # the allowed roots
    assert isinstance(refused.value, ValueError)

    wide = {
        **synthetic_config("x"),
        "source": {"layout": "wide_per_entity", "uris": {"a": "series.csv", "b": "/etc/passwd"}},
    }
    (layout / "data" / "wide.yaml").write_text(yaml.safe_dump(wide))
    with pytest.raises(SourcePolicyError, match=r"source\.uris\['b'\] = '/etc/passwd'"):
        DatasetConfig.from_yaml(layout / "data" / "wide.yaml", settings)

    # Without settings the roots are unknown, but no setting could allow another scheme.
    with pytest.raises(SourcePolicyError, match="scheme 'http' is not allowed"):
        DatasetConfig.from_yaml(write_config(layout / "data", name="web", uri="http://10.0.0.1/x.csv"))
    assert DatasetConfig.from_yaml(config).source.uri == "../secret.csv"  # form only: the read checks the rest


def test_ingest_of_a_forbidden_source_lands_nothing(layout: Path) -> None:
    settings = policy(layout)
    dataset = DatasetConfig.from_yaml(write_config(layout / "data", uri="../secret.csv"))
    with pytest.raises(SourcePolicyError, match="outside the allowed source roots"):
        ingest(dataset, SYNTHETIC_END, settings)
    assert not settings.landing.exists()


def test_nothing_from_a_config_can_place_a_file_outside_the_landing_partition(layout: Path) -> None:
    """Entity ids become values, never path parts; the dataset name and the date are checked shapes."""
    settings = policy(layout)
    one = synthetic_frame(entities=1).drop(columns="site")
    one.to_csv(layout / "data" / "one.csv", index=False)
    config = {**synthetic_config("x"), "source": {"layout": "wide_per_entity", "uris": {"../../../escape": "one.csv"}}}
    (layout / "data" / "wide.yaml").write_text(yaml.safe_dump(config))
    before = {p for p in layout.rglob("*") if p.is_file()}
    landed = ingest(DatasetConfig.from_yaml(layout / "data" / "wide.yaml", settings), SYNTHETIC_END, settings)
    created = {p for p in layout.rglob("*") if p.is_file()} - before
    assert created == {settings.landing / "synthetic" / f"ds={SYNTHETIC_END.isoformat()}" / "data.parquet"}
    assert Path(landed.path) in created
    assert set(pd.read_parquet(landed.path)["site"]) == {"../../../escape"}

    hostile_name = {**synthetic_config("series.csv"), "name": "../../evil"}
    (layout / "data" / "evil.yaml").write_text(yaml.safe_dump(hostile_name))
    with pytest.raises(ValidationError, match="name"):
        DatasetConfig.from_yaml(layout / "data" / "evil.yaml")
    parser = argparse.ArgumentParser()
    add_common_args(parser)
    assert parser.parse_args(["--logical-date", "2024-03-31"]).logical_date == date(2024, 3, 31)
    with pytest.raises(SystemExit):
        parser.parse_args(["--logical-date", "2024-03-31/../../x"])


def test_parse_alone_refuses_only_what_no_setting_allows(layout: Path) -> None:
    assert parse("/etc/passwd").path == Path("/etc/passwd")
    assert parse("s3://any-bucket/k.csv").bucket == "any-bucket"
    with pytest.raises(SourcePolicyError):
        parse("gs://bucket/k.csv")


def test_the_ingest_command_checks_the_whole_policy_when_it_loads_the_config(
    layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.settings import get_settings
    from data_pipeline.__main__ import main

    for key in [k for k in os.environ if k.startswith("MLOPS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLOPS_HOME", str(layout / "home"))
    monkeypatch.setenv("MLOPS_SOURCE_ROOTS", f'["{layout / "data"}"]')
    get_settings.cache_clear()
    try:
        bad = write_config(layout / "data", uri="../secret.csv")
        with pytest.raises(SourcePolicyError, match=r"synthetic\.yaml: dataset 'synthetic', source\.uri"):
            main(["ingest", "--dataset", str(bad), "--logical-date", SYNTHETIC_END.isoformat()])
        assert not (layout / "home" / "landing").exists()
        good = write_config(layout / "data", name="good", uri="series.csv")
        assert main(["ingest", "--dataset", str(good), "--logical-date", SYNTHETIC_END.isoformat()]) == 0
    finally:
        get_settings.cache_clear()

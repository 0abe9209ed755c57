"""The DAG parse benchmark on one file, once: the report's shape, not its figures."""

import json
from pathlib import Path

from benchmarks import dag_parse
from core.settings import PROJECT_ROOT


def test_one_file_once_writes_the_file_the_floor_their_ratio_and_the_import_timeout(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    assert (
        dag_parse.main(["--out", str(out), "--files", str(PROJECT_ROOT / "dags" / "rollback.py"), "--repeats", "1"])
        == 0
    )
    report = json.loads((out / "dag_parse.json").read_text())
    assert set(report) == {"parameters", "dagbag_import_timeout_seconds", "floor", "files"}
    assert report["parameters"]["repeats"] == 1
    assert report["dagbag_import_timeout_seconds"] > 0
    floor = report["floor"]
    assert floor["dags"] == ["parse_floor"]
    assert floor["errors"] == {}
    assert len(floor["runs"]) == 1
    assert floor["seconds"] > 0
    [row] = report["files"]
    assert row["file"] == "dags/rollback.py"
    datasets = sorted(p.stem for p in (PROJECT_ROOT / "configs" / "datasets").glob("*.yaml"))
    assert row["dags"] == [f"rollback_{name}_champion" for name in datasets]
    assert row["errors"] == {}
    assert len(row["runs"]) == 1
    assert row["seconds"] == row["runs"][0]
    assert row["ratio_to_floor"] > 0
    assert row["share_of_import_timeout"] > 0
    text = (out / "dag_parse.md").read_text()
    assert "`dags/rollback.py`" in text
    assert "dagbag_import_timeout" in text

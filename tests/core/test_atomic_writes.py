import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from core.dataset import DatasetConfig
from core.files import replacing, write_atomically, write_atomically_bytes, write_text_atomically
from core.partitions import partition_dates, partition_dir, partition_path
from core.settings import Settings


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


def test_a_failed_writer_leaves_the_target_as_it_was_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    write_text_atomically('{"v": 1}', target)

    def fail_halfway() -> None:
        with replacing(target) as tmp:
            tmp.write_text('{"v": 2, "trunc')
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        fail_halfway()
    assert target.read_text() == '{"v": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_publishing_swaps_in_the_written_file_and_a_reader_of_the_old_one_keeps_it_whole(tmp_path: Path) -> None:
    """The publish is a rename of the written file, not a write into the target: a reader that opened
    the old file before the publish reads all of the old bytes after it, and the target is then the
    very file (inode) that was written. A copy or an in-place write would truncate and overwrite the
    old file under the reader, which would read the new bytes, or a mix."""
    target = tmp_path / "features.bin"
    old, new = b"old " * 50_000, b"NEW " * 20_000  # the new content shorter: a truncation shows too
    write_atomically_bytes(old, target)
    with target.open("rb") as reader:
        old_inode = os.fstat(reader.fileno()).st_ino
        with replacing(target) as tmp:
            tmp.write_bytes(new)
            written_inode = tmp.stat().st_ino
            assert target.read_bytes() == old  # not published yet
        assert target.stat().st_ino == written_inode, "the target is not the file that was written"
        assert written_inode != old_inode
        assert target.read_bytes() == new
        assert reader.read() == old, "the old file changed under a reader that had it open"


def test_a_write_removes_leftovers_of_dead_writers_and_keeps_those_of_live_ones(tmp_path: Path) -> None:
    host = socket.gethostname()
    two_days_ago = time.time() - 2 * 24 * 3600

    def leftover(name: str, old: bool = False) -> Path:
        path = tmp_path / name
        path.write_text("partial")
        if old:
            os.utime(path, (two_days_ago, two_days_ago))
        return path

    dead_here = leftover(f".report.json.{host}.{dead_pid()}.aa.tmp")
    live_here = leftover(f".report.json.{host}.{os.getpid()}.bb.tmp")  # a concurrent writer of this process
    fresh_elsewhere = leftover(".report.json.other-host.example.1.cc.tmp")
    old_elsewhere = leftover(".report.json.other-host.example.1.dd.tmp", old=True)
    old_unnamed = leftover(".report.json.ee.tmp", old=True)
    other_target = leftover(f".report.json.bak.{host}.{dead_pid()}.ff.tmp")

    write_text_atomically("done", tmp_path / "report.json")

    assert (tmp_path / "report.json").read_text() == "done"
    assert not dead_here.exists()
    assert not old_elsewhere.exists()
    assert not old_unnamed.exists()
    assert live_here.exists()
    assert fresh_elsewhere.exists()
    assert other_target.exists()


def test_a_folder_without_its_data_file_is_no_partition(tmp_path: Path, dataset: DatasetConfig) -> None:
    """What a failed re-validation (the file removed) or a killed first write (a temporary file only) leaves."""
    write_atomically(pd.DataFrame({"x": [1.0]}), partition_path(tmp_path, dataset, date(2024, 3, 30)))
    emptied = partition_dir(tmp_path, dataset, date(2024, 3, 31))
    emptied.mkdir(parents=True)
    killed = partition_dir(tmp_path, dataset, date(2024, 4, 1))
    killed.mkdir(parents=True)
    (killed / f".data.parquet.{socket.gethostname()}.1.aa.tmp").write_bytes(b"PAR1")
    assert partition_dates(tmp_path, dataset, Settings(home=tmp_path)) == [date(2024, 3, 30)]

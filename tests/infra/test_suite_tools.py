"""The suite's own machinery: what is made once per run is made once, whichever worker asks, a
scenario module keeps the order of its steps when the suite is shuffled, an emulated image's
virtualenv holds the files of what its requirements pin, and no more heavy modules run at once than
``make test`` allows."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.settings import PROJECT_ROOT


class _Factory:
    """The one method of pytest's TempPathFactory that ``made_once`` reads, for a worker process."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def getbasetemp(self) -> Path:
        return self.base


def _ask(run: str, worker: str, workers: int) -> str:
    """A worker of a run asking for the shared folder; ``make`` appends a line each time it runs, and
    finishes only once every worker has asked (so the others ask while it makes)."""
    import os

    from tests.utils.servers import wait_for
    from tests.utils.shared import made_once

    os.environ["PYTEST_XDIST_WORKER"] = worker
    asked = Path(run) / "asked"
    asked.mkdir(exist_ok=True)

    def make(folder: Path) -> None:
        with (Path(run) / "made.log").open("a") as log:
            log.write(f"{worker}\n")
        wait_for(lambda: len(list(asked.iterdir())) == workers, "every worker asking", timeout=60)
        (folder / "result").write_text(worker)

    (asked / worker).touch()

    factory = _Factory(Path(run) / f"popen-{worker}")
    factory.base.mkdir(parents=True, exist_ok=True)
    return (made_once(factory, "shared", make) / "result").read_text()  # type: ignore[arg-type]


def test_what_workers_share_is_made_once_and_read_by_all(tmp_path: Path) -> None:
    workers = ["gw0", "gw1", "gw2"]
    with ProcessPoolExecutor(len(workers)) as pool:
        results = list(pool.map(_ask, [str(tmp_path)] * len(workers), workers, [len(workers)] * len(workers)))
    made = (tmp_path / "made.log").read_text().split()
    assert len(made) == 1, made
    assert results == made * len(workers), "every worker reads what the one that made it made"


def test_a_failed_make_leaves_nothing_and_the_next_worker_makes_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.utils.shared import made_once

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    factory = _Factory(tmp_path / "popen-gw0")

    def fail(folder: Path) -> None:
        (folder / "half").write_text("written before the failure")
        raise RuntimeError("training failed")

    with pytest.raises(RuntimeError, match="training failed"):
        made_once(factory, "shared", fail)  # type: ignore[arg-type]
    folder = made_once(factory, "shared", lambda folder: (folder / "whole").write_text("ok"))  # type: ignore[arg-type]
    assert sorted(p.name for p in folder.iterdir()) == [".done", "whole"], "the failed try's file is gone"


def test_a_shuffled_suite_keeps_a_scenario_modules_steps_in_order(tmp_path: Path) -> None:
    """pytest-randomly shuffles every module's tests; a ``scenario`` module's come back in the order
    written, at the places the shuffle gave them. The same seed without the marker shuffles them,
    so the check can fail."""
    steps = "\n".join(f"def test_step_{n}() -> None:\n    pass\n" for n in range(8))
    (tmp_path / "test_story.py").write_text("import pytest\n\npytestmark = pytest.mark.scenario\n\n" + steps)
    (tmp_path / "test_plain.py").write_text(steps)
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(PROJECT_ROOT)!r})
            from tests.conftest import pytest_collection_modifyitems  # noqa: F401
            """
        )
    )
    argv = [sys.executable, "-m", "pytest", "-p", "randomly", "--randomly-seed=3", "--collect-only", "-q"]
    argv += ["-c", str(PROJECT_ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), "-p", "no:cacheprovider"]
    listed = subprocess.run([*argv, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    collected = [line.split("::") for line in listed.splitlines() if "::" in line]
    story = [name for module, name in collected if module.endswith("test_story.py")]
    plain = [name for module, name in collected if module.endswith("test_plain.py")]
    written = [f"test_step_{n}" for n in range(8)]
    assert story == written
    assert sorted(plain) == written
    assert plain != written, "the seed shuffles a plain module's tests"


def _one_pin_image(root: Path, pin: str) -> Path:
    """The Dockerfile of an image holding a virtualenv of a requirements file that pins ``pin`` alone
    (its build context: the Dockerfile's folder)."""
    (root / "context").mkdir(parents=True)
    (root / "context" / "requirements.txt").write_text(pin + "\n")
    dockerfile = root / "context" / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11-slim\nCOPY requirements.txt /tmp/requirements.txt\n"
        "RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r /tmp/requirements.txt\n"
    )
    return dockerfile


def test_an_emulated_image_takes_a_distribution_from_this_environment_whatever_the_path_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another copy's metadata on the test process's path (its files lying elsewhere) does not leave
    the distribution's files out of the image's virtualenv; a pin this environment lacks fails the build."""
    import importlib.metadata

    from tests.utils.pods import build

    version = importlib.metadata.version("colorama")
    elsewhere = tmp_path / "elsewhere"
    record = elsewhere / f"colorama-{version}.dist-info"
    record.mkdir(parents=True)
    (record / "METADATA").write_text(f"Metadata-Version: 2.1\nName: colorama\nVersion: {version}\n")
    (record / "RECORD").write_text("../../somewhere/colorama/__init__.py,,\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    assert importlib.metadata.distribution("colorama").locate_file("").resolve() == elsewhere.resolve()

    dockerfile = _one_pin_image(tmp_path / "one", f"colorama=={version}")
    image = build(dockerfile, tmp_path / "image", dockerfile.parent)
    venv = image.venvs["/opt/venv"]
    imported = subprocess.run([str(venv / "bin" / "python"), "-c", "import colorama; print(colorama.__file__)"],
                              cwd=tmp_path, capture_output=True, text=True, check=False)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert Path(imported.stdout.strip()).is_relative_to(venv)

    unknown = _one_pin_image(tmp_path / "two", "no-such-distribution==1.0")
    with pytest.raises(ValueError, match="not installed"):
        build(unknown, tmp_path / "image-2", unknown.parent)


class _Worker:
    """What the scheduler sees of an xdist worker: the test indexes sent to it, and whether it was
    told to finish."""

    def __init__(self, name: str) -> None:
        self.name, self.queue, self.shutting_down = name, list[int](), False
        self.gateway = SimpleNamespace(id=name)

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.queue += indexes

    def shutdown(self) -> None:
        self.shutting_down = True


@pytest.mark.parametrize("limit", [1, 2])
def test_no_more_heavy_modules_run_at_once_than_the_limit_and_every_test_runs(tmp_path: Path, limit: int) -> None:
    """The scheduler of ``make test`` driven as xdist drives it: four workers, heavy files first in
    the queue as the suite orders them. A worker runs a test only once it knows the next or is told
    to finish (as xdist's do). At every step at most ``limit`` workers are in a heavy file; every test
    runs once, and every worker is told to finish (nothing waits forever). Plain ``--dist loadfile``
    puts the four heavy files on the four workers at once, so the check can fail."""
    from xdist.scheduler import LoadFileScheduling

    from tests.utils.scheduling import HEAVY_MODULES, HeavyLimitedScheduling

    heavy = [f"tests/test_heavy_{n}.py" for n in range(4)]
    # Few light files: workers run out of them and wait for a heavy one.
    files = {**{name: 3 for name in heavy}, **{f"tests/test_light_{n}.py": 1 + n for n in range(3)}}
    collection = [f"{name}::test_{t}" for name, tests in files.items() for t in range(tests)]
    (tmp_path / HEAVY_MODULES).write_text(__import__("json").dumps(heavy))
    config = SimpleNamespace(option=SimpleNamespace(loadscopereorder=False), getvalue={"tx": ["4*popen"]}.get)

    def most_heavy_at_once(scheduler: LoadFileScheduling) -> tuple[int, list[str]]:
        workers = [_Worker(f"gw{n}") for n in range(4)]
        for worker in workers:
            scheduler.add_node(worker)  # type: ignore[arg-type]
            scheduler.add_node_collection(worker, collection)  # type: ignore[arg-type]
        scheduler.schedule()
        ran, most = [], 0
        while any(w.queue for w in workers):
            runnable = [w for w in workers if len(w.queue) > 1 or (w.queue and w.shutting_down)]
            assert runnable, "every worker waits for work that never comes"
            in_heavy = {w.name for w in workers if w.queue and collection[w.queue[0]].split("::")[0] in heavy}
            most = max(most, len(in_heavy))
            worker = runnable[len(ran) % len(runnable)]
            index = worker.queue.pop(0)
            ran.append(collection[index])
            scheduler.mark_test_complete(worker, index)  # type: ignore[arg-type]
        assert all(w.shutting_down for w in workers)
        return most, ran

    most, ran = most_heavy_at_once(HeavyLimitedScheduling(config, None, tmp_path, limit))  # type: ignore[arg-type]
    assert sorted(ran) == sorted(collection)
    assert most <= limit
    assert most_heavy_at_once(LoadFileScheduling(config))[0] == 4  # type: ignore[arg-type]

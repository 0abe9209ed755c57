"""``python -m benchmarks.scale``: the scale benchmark (see :mod:`benchmarks.scale`)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import benchmarks.scale
from benchmarks.scale.serving import BATCH, BATCH_RATE, RATE
from benchmarks.scale.stage import DAY_STAGES, STAGES
from core.settings import PROJECT_ROOT, Settings, child_environment

log = logging.getLogger("benchmarks.scale")

DEFAULT_HOME = PROJECT_ROOT / ".mlops" / "bench-scale"
STAGE_TIMEOUT_SECONDS = 3600
# Stages whose time is not a cost of the series: the data's making, and loads of a fixed length.
UNTIMED = ("generate", "serve", "global_sample_accuracy")
# Series up to which a global model is also trained on every row, to compare with its sample: past
# it, every row is more than these 24 GB hold (the reason for the sample).
EVERY_ROW_UP_TO = 10_000
# The retraining's fits: hours at the largest counts on a small machine, so a run may stop them at a
# count (``--fits-up-to``) and measure the day's stages past it.
FITS = ("fit_per_series", "fit_global")
# What each stage needs before it: a failed stage skips the ones that need its output.
NEEDS = {
    "ingest": "generate",
    "validate": "ingest",
    "features": "validate",
    "materialize": "features",
    "training_set": "materialize",
    "fit_per_series": "training_set",
    "fit_global": "training_set",
    "global_sample_accuracy": "training_set",
    "champion": "training_set",
    "batch_forecast": "champion",
    "score": "batch_forecast",
    "drift_monitor": "champion",
    "serve": "champion",
}


def measure(argv: list[str], env: dict[str, str], log_path: Path) -> dict[str, Any]:
    """Run ``argv`` to its end: its wall seconds and the JSON of its last stdout line, whose
    ``peak_rss_mb`` is the process's own (``wait4``'s, which counts what it inherited from this
    process at ``fork``, where it says none); a non-zero exit is a ``RuntimeError`` naming its log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("wb") as errors:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=errors, cwd=PROJECT_ROOT)
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"exit code {process.returncode} (log: {log_path}): {tail[0][:300]}")
    lines = output.decode().strip().splitlines()
    made = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), **made}  # made's peak wins


@dataclass(frozen=True)
class Servers:
    """The throwaway servers of a run: Redis (the online store) and PostgreSQL (the forecast table, a
    database per series count)."""

    redis_port: int
    postgres_port: int

    def forecast_db(self, series: int) -> str:
        return f"postgresql+psycopg://mlops@127.0.0.1:{self.postgres_port}/{forecast_database(series)}"


def forecast_database(series: int) -> str:
    return f"forecasts_{series}"


def settings_for(home: Path, dataset: Path, data: Path, servers: Servers, series: int) -> Settings:
    from benchmarks.serving.servers import bench_settings

    update = {"source_roots": [data], "forecast_db": servers.forecast_db(series)}
    return bench_settings(home, dataset, servers.redis_port).model_copy(update=update)


def stage_argv(stage: str, dataset: Path, day: date, family: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.scale.stage", stage, "--dataset", str(dataset),
            "--logical-date", str(day), "--family", family]  # fmt: skip


def run_count(series: int, args: argparse.Namespace, servers: Servers) -> list[dict[str, Any]]:
    """Every stage for ``series`` series, in order; a row per stage (with ``error`` where it failed)."""
    from harness.series import END

    home, data = args.home / str(series), args.home / "data" / str(series)
    shutil.rmtree(home, ignore_errors=True)
    logs = args.home / "logs" / str(series)
    rows: list[dict[str, Any]] = []
    failed: set[str] = set()
    dataset = data / f"daily_{series}.yaml"
    stages = [("generate", [*stage_argv("generate", dataset, END, args.family), "--days", str(args.days)])]
    globals_ = ("fit_global", "global_sample_accuracy")
    stages += [(stage, stage_argv(stage, dataset, END, args.global_family if stage in globals_ else args.family))
               for stage in STAGES if stage != "generate" and stage in args.stages
               and (stage != "global_sample_accuracy" or series <= EVERY_ROW_UP_TO)
               and (stage not in FITS or args.fits_up_to is None or series <= args.fits_up_to)]  # fmt: skip
    stages = [(stage, [*argv, "--seconds", str(args.serve_seconds)] if stage == "serve" else argv)
              for stage, argv in stages]  # fmt: skip
    env = child_environment(settings_for(home, dataset, data, servers, series))
    for stage, argv in stages:
        row: dict[str, Any] = {"series": series, "stage": stage}
        if NEEDS.get(stage) in failed:
            failed.add(stage)
            rows.append({**row, "wall_s": None, "peak_rss_mb": None, "error": f"skipped: {NEEDS[stage]} failed"})
            continue
        try:
            row.update(measure(argv, env, logs / f"{stage}.log"))
        except RuntimeError as exc:
            failed.add(stage)
            row.update({"wall_s": None, "peak_rss_mb": None, "error": str(exc)})
        log.info("%d series, %s: %s", series, stage, row)
        rows.append(row)
    return rows


def ray_runs(series: int, args: argparse.Namespace, servers: Servers) -> dict[str, Any]:
    """The per-series fit of ``series`` series in-process, on one Ray worker and on two (the data of
    that count's run); seconds and the digest of each fitted bundle."""
    from harness.ray_cluster import ray_cluster
    from harness.series import END

    home, data = args.home / str(series), args.home / "data" / str(series)
    dataset = data / f"daily_{series}.yaml"
    settings = settings_for(home, dataset, data, servers, series)
    argv = [*stage_argv("fit_per_series", dataset, END, args.family), "--digest"]
    logs = args.home / "logs" / str(series)
    out: dict[str, Any] = {"series": series, "family": args.family}
    out["local"] = measure(argv, child_environment(settings), logs / "ray-local.log")
    for workers in (1, 2):
        with ray_cluster(workers=workers, cpus=1, logs=logs / f"ray-{workers}") as cluster:
            env = child_environment(settings, engine="ray", ray_address=cluster.address)
            out[f"ray_{workers}"] = measure(argv, env, logs / f"ray-{workers}-workers.log")
    out["same_bundles"] = same_bundles(out)
    out["speedup"] = round(out["ray_1"]["wall_s"] / out["ray_2"]["wall_s"], 3)
    return out


def same_bundles(runs: dict[str, Any]) -> bool:
    """Whether the in-process, one-worker and two-worker fits saved the same bundle (equal digests)."""
    return len({runs[key]["digest"] for key in ("local", "ray_1", "ray_2")}) == 1


def exponents(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per stage: the log-log slope of wall time over series between the two largest counts measured."""
    slopes: dict[str, float | None] = {}
    for stage in dict.fromkeys(row["stage"] for row in rows):
        points = sorted((row["series"], row["wall_s"]) for row in rows if row["stage"] == stage and row["wall_s"])
        if len(points) < 2:
            slopes[stage] = None
            continue
        (n0, t0), (n1, t1) = points[-2], points[-1]
        slopes[stage] = round(math.log(t1 / t0) / math.log(n1 / n0), 3) if t0 > 0 and t1 > 0 else None
    return slopes


def markdown(report: dict[str, Any]) -> str:
    rows, counts = report["rows"], sorted({row["series"] for row in report["rows"]})
    lines = ["# Scale: each stage's cost as the series grow", "", "![wall time per stage](scale.png)", ""]
    lines += ["| stage | " + " | ".join(f"{n:,} series: s, MB" for n in counts) + " | exponent |"]
    lines += ["|---|" + "---:|" * (len(counts) + 1)]
    for stage in dict.fromkeys(row["stage"] for row in rows):
        cells = []
        for n in counts:
            row = next((r for r in rows if r["stage"] == stage and r["series"] == n), None)
            if row is None:
                cells.append("")
            elif row["wall_s"] is None:
                cells.append(f"failed: {row['error'][:60]}")
            else:
                cells.append(f"{row['wall_s']:.1f} s, {row['peak_rss_mb']:.0f} MB")
        slope = report["exponents"].get(stage)
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {'' if slope is None else f'{slope:.2f}'} |")
    lines += ["", "One day of the loop (" + ", ".join(DAY_STAGES) + "), summed: " + ", ".join(
        f"{int(n):,} series {s:.0f} s" for n, s in report["day_wall_s"].items()) + "."]  # fmt: skip
    serving = [r for r in rows if r["stage"] == "serve" and r["wall_s"] is not None]
    if serving:
        lines += [
            "",
            f"The service under load ({RATE} requests a second of one entity; batches of {BATCH} at "
            f"{BATCH_RATE} a second), p99 in ms:",
            "",
            "| series | two entities | one of all | ratio | batch of 100 | errors |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for row in serving:
            two, one, batch = (row[name] for name in ("two_entities", "one_of_all", "batch_100"))
            errors = two["errors"] + one["errors"] + batch["errors"]
            lines.append(f"| {row['entities']:,} | {two['p99_ms']:.1f} | {one['p99_ms']:.1f} | "
                         f"{one['p99_ms'] / two['p99_ms']:.2f} | {batch['p99_ms']:.1f} | {errors} |")  # fmt: skip
    ray = report.get("ray")
    if ray:
        lines += [
            "",
            f"Per-series fit ({ray['family']}) of {ray['series']:,} series: in-process {ray['local']['wall_s']:.1f} s, "
            f"Ray with one worker {ray['ray_1']['wall_s']:.1f} s, with two {ray['ray_2']['wall_s']:.1f} s: "
            f"**{ray['speedup']:.2f}x** (target 1.7x); the three bundles are "
            + ("the same files." if ray["same_bundles"] else "**not** the same files."),
        ]
    for row in rows:
        if row["stage"] == "global_sample_accuracy" and row["wall_s"] is not None:
            sample, every = row["sample"], row["every_row"]
            lines += [
                "",
                f"{row['family']} on {row['series']:,} series, backtested on the same {sample['test_rows']:,} test "
                f"rows: trained on the sample its training reads (training.max_rows {row['max_rows']:,}: "
                f"{sample['rows']:,} rows), MAE {sample['mae']:.4f}; on every row ({every['rows']:,}), MAE "
                f"{every['mae']:.4f}: **{row['mae_ratio']:.3f}x**.",
            ]
    largest = [r for r in rows if r["wall_s"] and r["series"] == counts[-1] and r["stage"] not in UNTIMED]
    biggest = max(largest, key=lambda r: r["wall_s"], default=None)
    if biggest is not None:
        lines += ["", f"The biggest stage at {counts[-1]:,} series: {biggest['stage']} ({biggest['wall_s']:.0f} s)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=benchmarks.scale.__doc__)
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000], help="the series counts to run")
    parser.add_argument("--days", type=int, default=730, help="days of history of each series")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="the stages to run "
                        "(the series are generated in any case)")  # fmt: skip
    parser.add_argument("--family", default="auto_ets", help="the per-series family of fit_per_series")
    parser.add_argument("--global-family", default="lightgbm", help="the global family of fit_global")
    parser.add_argument("--ray-series", type=int, default=None, help="series of the Ray comparison (default: the "
                        "smallest count; 0: none)")  # fmt: skip
    parser.add_argument("--fits-up-to", type=int, default=None, help="fit_per_series and fit_global only up to "
                        "this many series (default: at every count)")  # fmt: skip
    parser.add_argument("--serve-seconds", type=float, default=20.0, help="serve: seconds of each load at its rate")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="the benchmark's state")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    from benchmarks.charts import scale_chart
    from benchmarks.serving.servers import redis_server
    from core.cli import configure_logging
    from harness.net import free_port
    from harness.servers import exit_on_sigterm, postgres

    configure_logging()
    logging.getLogger("benchmarks").setLevel(logging.INFO)
    exit_on_sigterm()
    started = datetime.now(UTC)
    port = free_port()
    ray_series = min(args.series) if args.ray_series is None else args.ray_series
    rows: list[dict[str, Any]] = []
    databases = tuple(forecast_database(n) for n in sorted(args.series))
    with redis_server(port, args.home / "logs"), postgres(databases, args.home / "logs" / "postgres.log") as pg:
        servers = Servers(port, pg)
        for series in sorted(args.series):
            rows += run_count(series, args, servers)
        ray = ray_runs(ray_series, args, servers) if ray_series and "fit_per_series" in args.stages else None
    day = {str(n): round(sum(r["wall_s"] or 0 for r in rows if r["series"] == n and r["stage"] in DAY_STAGES), 1)
           for n in sorted(args.series)}  # fmt: skip
    report = {
        "parameters": {
            "series": sorted(args.series), "days": args.days, "family": args.family,
            "global_family": args.global_family, "cpus": os.cpu_count(), "python": platform.python_version(),
            "started_at": started.isoformat(timespec="seconds"),
            "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        },
        "rows": rows,
        "exponents": exponents([r for r in rows if r["stage"] not in UNTIMED]),
        "day_wall_s": day,
        "ray": ray,
        "ray_speedup": None if ray is None else ray["speedup"],
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(report, indent=2))
    (args.out / "scale.md").write_text(markdown(report))
    scale_chart(rows, args.out / "scale.png")
    print((args.out / "scale.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

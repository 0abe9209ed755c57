"""The serving benchmark's report: the targets met or not, with the numbers they were decided on, and
the markdown of the runs' rows (``serving.md``)."""

from __future__ import annotations

import os
import platform
from typing import Any

from benchmarks.serving.plan import (
    BANDS_RATIO_TARGET,
    FEAST,
    FLOOR,
    FLOOR_RATIO_TARGET,
    HIGH_RATE_SECONDS,
    HIGH_RATE_WORKERS,
    LEDGER_RATIO_TARGET,
    MAX_ERROR_SHARE,
    OURS,
    OURS_BANDS,
    OURS_LEDGER_ON,
    OURS_NO_LEDGER,
    OURS_NO_LEDGER_AGAIN,
    OURS_P99_TARGET_MS,
    OURS_P99_TARGET_RATE,
    OURS_POINT_ONLY,
    OURS_POINT_ONLY_AGAIN,
    POOLED,
    RATES,
    SUSTAINED_RATE,
    SUSTAINED_SHARE,
    WARMUP_SECONDS,
)


def _row(rows: list[dict[str, Any]], system: str, rate: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["system"] == system and r["rate_rps"] == rate), None)


def _p99(rows: list[dict[str, Any]], system: str, rate: int) -> float | None:
    row = _row(rows, system, rate)
    return None if row is None else row["p99_ms"]


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def floor_ratio(rows: list[dict[str, Any]], rate: int) -> float | None:
    """Ours p99 over the floor's p99 at ``rate``: what the service adds to the least an answer costs."""
    mine, bare = _row(rows, OURS, rate), _row(rows, FLOOR, rate)
    if mine is None or bare is None or not mine["p99_ms"] or not bare["p99_ms"]:
        return None
    return float(mine["p99_ms"]) / float(bare["p99_ms"])


def paired_ratio(
    rows: list[dict[str, Any]], rate: int, system: str, reference: str
) -> tuple[float, float, float] | None:
    """(p99 ratio of ``system`` to ``reference`` over all their rounds pooled, that p99 of ``system``,
    that p99 of ``reference``) at ``rate``; the second copy of the reference gives the pairs' own noise."""

    def pooled(name: str) -> float | None:
        return next(
            (
                float(r["p99_ms"])
                for r in rows
                if r["system"] == name and r["rate_rps"] == rate and r.get("round") == POOLED and r["p99_ms"]
            ),
            None,
        )

    on, off = pooled(system), pooled(reference)
    if on is None or off is None:
        return None
    return on / off, on, off


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per target of the issue, with the numbers it was decided on."""
    lines = []
    for rate in RATES:
        mine, theirs = _row(rows, OURS, rate), _row(rows, FEAST, rate)
        if mine is None or theirs is None:
            continue
        ok = mine["p99_ms"] is not None and theirs["p99_ms"] is not None and mine["p99_ms"] < theirs["p99_ms"]
        lines.append(
            f"- ours p99 below feast serve's p99 at {rate} rps: **{_met(ok)}** "
            f"({_ms(mine['p99_ms'])} vs {_ms(theirs['p99_ms'])})"
        )
    pairs = (
        (OURS_LEDGER_ON, OURS_NO_LEDGER, OURS_NO_LEDGER_AGAIN, LEDGER_RATIO_TARGET,
         "with the forecast ledger", "ours without it", "two services with the ledger off"),
        (OURS_BANDS, OURS_POINT_ONLY, OURS_POINT_ONLY_AGAIN, BANDS_RATIO_TARGET,
         "with 80% and 95% bands", "the same model point-only", "two point-only services"),
    )  # fmt: skip
    for system, reference, again, target, what, versus, twins in pairs:
        paired = paired_ratio(rows, OURS_P99_TARGET_RATE, system, reference)
        if paired is None:
            continue
        noise = paired_ratio(rows, OURS_P99_TARGET_RATE, again, reference)
        slower, on, off = paired
        rounds = sum(
            1
            for r in rows
            if r["system"] == system and r["rate_rps"] == OURS_P99_TARGET_RATE and r.get("round") != POOLED
        )
        lines.append(
            f"- ours p99 {what} within {target - 1:.0%} of {versus} at "
            f"{OURS_P99_TARGET_RATE} rps: **{_met(slower <= target)}** "
            f"({slower:.2f}x, {rounds} rounds in turns pooled; p99 {_ms(on)} vs {_ms(off)}"
            + (f"; {twins}: {noise[0]:.2f}x)" if noise else ")")
        )
    mine, bare = _row(rows, OURS, OURS_P99_TARGET_RATE), _row(rows, FLOOR, OURS_P99_TARGET_RATE)
    if mine is not None and bare is not None:
        ratio = floor_ratio(rows, OURS_P99_TARGET_RATE)
        ok = ratio is not None and ratio <= FLOOR_RATIO_TARGET
        lines.append(
            f"- ours p99 at most {FLOOR_RATIO_TARGET:g}x the floor's at {OURS_P99_TARGET_RATE} rps: **{_met(ok)}** "
            f"({'n/a' if ratio is None else f'{ratio:.2f}x'}: {_ms(mine['p99_ms'])} vs {_ms(bare['p99_ms'])})"
        )
    if mine is not None:
        ok = mine["p99_ms"] is not None and mine["p99_ms"] <= OURS_P99_TARGET_MS
        lines.append(
            f"- ours p99 <= {OURS_P99_TARGET_MS:g} ms at {OURS_P99_TARGET_RATE} rps: **{_met(ok)}** "
            f"({_ms(mine['p99_ms'])})"
        )
    high = _row(rows, OURS, SUSTAINED_RATE)
    if high is not None:
        share = high["errors"] / high["requests"]
        ok = high["achieved_rps"] >= SUSTAINED_SHARE * SUSTAINED_RATE and share < MAX_ERROR_SHARE
        lines.append(
            f"- ours sustains {SUSTAINED_RATE:,} rps with {high['workers']} workers and under "
            f"{MAX_ERROR_SHARE:.0%} errors: **{_met(ok)}** ({high['achieved_rps']:,} rps answered 2xx, "
            f"{share:.2%} errors, p99 {_ms(high['p99_ms'])})"
        )
    return lines


def markdown(
    rows: list[dict[str, Any]],
    seconds: float,
    version: str,
    model: str,
    entity: str,
    chart: str | None = None,
    family: str = "xgboost",
) -> str:
    """The report: how it was measured, the table, then the targets; ``chart``, the file name of the
    p99 chart beside it (:func:`benchmarks.charts.serving_chart`), shown under the table."""
    cpus = os.cpu_count()
    lines = [
        "# Serving latency",
        "",
        f"One request for entity `{entity}` at a fixed arrival rate, {seconds:g} s per rate "
        f"(at least {HIGH_RATE_SECONDS:g} s for the {HIGH_RATE_WORKERS}-worker rates) after a "
        f"{WARMUP_SECONDS:g} s warm-up; `{model}` v{version} ({family}), features in a local `redis-server`. "
        f"Client and servers share this machine ({platform.machine()}, {cpus} CPUs). Latency is from "
        "sending a request to reading its answer; errors are non-2xx answers and requests without one; "
        "achieved is 2xx answers per second.",
        "",
        "Load comes from `python -m benchmarks.loadgen`, which sends on a fixed schedule whatever the "
        "answers, not from `hey -q`, whose workers fire in lockstep (bursts of `-c` requests). Each server "
        "runs with its defaults (access log on for feast serve and mlflow models serve, off for ours and the "
        "floor), "
        "except `feast serve --max-requests 0`: by default its "
        "one worker is replaced after about 1,000 requests. Between rates each server first works off "
        "what the previous run left queued.",
        "",
        "| system | workers | rate rps | p50 ms | p99 ms | achieved rps | errors | requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {r['system']}{' (all rounds pooled)' if r.get('round') == POOLED else ''} | {r['workers']} | "
            f"{r['rate_rps']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['achieved_rps']} | {r['errors']} | {r['requests']} |"
            for r in rows
        ],
        *(["", f"![p99 latency per offered rate, one line per system]({chart})"] if chart else []),
        "",
        "## Targets",
        "",
        *target_lines(rows),
    ]
    against = [(rate, floor_ratio(rows, rate)) for rate in RATES]
    if any(ratio is not None for _, ratio in against):
        lines += [
            "",
            "## Against the floor",
            "",
            "The floor is a bare uvicorn app (same server, one worker, no access log) that does the service's "
            "one Redis read of the entity's features and answers a fixed body of a forecast's size: what is "
            "left of ours above it is parsing, validation, batching, decoding, the model and the answer.",
            "",
            "| rate rps | floor p99 ms | ours p99 ms | ours / floor |",
            "|---:|---:|---:|---:|",
            *[
                f"| {rate} | {_p99(rows, FLOOR, rate)} | {_p99(rows, OURS, rate)} | {ratio:.2f}x |"
                for rate, ratio in against
                if ratio is not None
            ],
        ]
    split = [r for r in rows if r["system"] == OURS and "fetch_mean_ms" in r]
    if split:
        lines += [
            "",
            "## Where our time goes",
            "",
            "Means from the service's own histograms (all workers), against the client's p50. Requests "
            "that arrive while a batch is computed are read and predicted together in the next one: fetch "
            "and predict are per batch.",
            "",
            "| workers | rate rps | in the app ms | entities per batch | feature fetch ms | predict ms | "
            "client p50 ms |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            *[
                f"| {r['workers']} | {r['rate_rps']} | {r.get('server_mean_ms', 'n/a')} | "
                f"{r.get('batch_mean_entities', 'n/a')} | {r.get('fetch_mean_ms', 'n/a')} | "
                f"{r.get('predict_mean_ms', 'n/a')} | {r['p50_ms']} |"
                for r in split
            ],
        ]
    return "\n".join(lines) + "\n"


def read_paths_section(reads: list[dict[str, Any]]) -> str:
    """The in-process comparison of the two online read paths, as a section of ``serving.md``."""
    section = "\n## Online read paths (in-process, same Redis data)\n\n"
    section += "| read path | entities | p50 ms | p99 ms |\n|---|---:|---:|---:|\n"
    section += "".join(
        f"| {r['read_path']} | {r['entities']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |\n" for r in reads
    )
    return section

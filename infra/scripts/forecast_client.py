"""``python infra/scripts/forecast_client.py --entity ID``: wait until the service is ready, then print one forecast.

A small standard-library client, used by ``make demo`` and handy for a quick manual check: the
forecast as a table (each step's value and the bounds of every interval level). ``--json`` prints
the answer's JSON as the service sent it instead (for ``jq`` and scripts); ``--save PATH`` writes
that JSON to a file as well.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def wait_ready(base_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = exc.read().decode()
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"service at {base_url} not ready after {timeout:.0f}s: {last}")


def request_forecast(base_url: str, entity_id: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/v1/forecast",
        data=json.dumps({"entity_id": entity_id}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def table(body: dict[str, Any], max_steps: int | None = None) -> str:
    """The forecast's steps as aligned text: time, value, then lower and upper bound per level.

    A pure function of the answer's body (``model_serving.schemas.Forecast`` as JSON), so that its
    layout is tested without a service. A step without a band of some level shows ``-`` there. With
    ``max_steps``, a longer horizon shows its first steps and says how many more the JSON holds.
    """
    levels = [float(level) for level in body.get("interval_levels", [])]
    header = ["step", "time", "forecast"] + [f"{level:.0%} {side}" for level in levels for side in ("lower", "upper")]
    rows = [header]
    shown = body["forecast"] if max_steps is None else body["forecast"][:max_steps]
    for step, point in enumerate(shown, start=1):
        bounds = {float(band["level"]): band for band in point.get("intervals", [])}
        cells = [str(step), str(point["timestamp"]), f"{point['value']:.3f}"]
        cells += [
            f"{bounds[level][side]:.3f}" if level in bounds else "-" for level in levels for side in ("lower", "upper")
        ]
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    title = f"{body['entity_id']}: {body['model_name']} v{body['model_version']}"
    if body.get("model_family"):
        title += f" ({body['model_family']}"
        title += f": {' + '.join(body['answered_by'])})" if body.get("answered_by") else ")"
    if not levels:
        title += f" (no intervals: {body.get('note') or 'none in the answer'})"
    more = len(body["forecast"]) - len(shown)
    return "\n".join([title, *lines, *([f"  ... {more} more steps (--json prints them all)"] if more else [])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra/scripts/forecast_client.py", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--entity", required=True)
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for readiness")
    parser.add_argument("--json", action="store_true", help="print the answer's JSON instead of the table")
    parser.add_argument("--save", type=Path, default=None, help="also write the answer's JSON to this file")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="the table's first steps only (a long horizon stays readable)"
    )
    args = parser.parse_args(argv)
    wait_ready(args.url, args.wait)
    body = request_forecast(args.url, args.entity)
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(body, indent=2) + "\n")
    print(json.dumps(body, indent=2) if args.json else table(body, args.max_steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())

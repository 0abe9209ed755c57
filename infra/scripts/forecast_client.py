"""``python infra/scripts/forecast_client.py --entity ID``: wait until the service is ready, then print one forecast.

A small standard-library client, used by ``make demo`` and handy for a quick manual check.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


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


def request_forecast(base_url: str, entity_id: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"{base_url}/v1/forecast",
        data=json.dumps({"entity_id": entity_id}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, object] = json.loads(response.read())
        return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra/scripts/forecast_client.py", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--entity", required=True)
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for readiness")
    args = parser.parse_args(argv)
    wait_ready(args.url, args.wait)
    body = request_forecast(args.url, args.entity)
    print(json.dumps(body, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

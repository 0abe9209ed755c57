"""The forecasting service's OpenAPI schema, as the app publishes it with the default settings.

    .venv/bin/python -m infra.docs.openapi OUT.json   # what openapi_schema runs, from the checkout's root

The API reference and ``reference/openapi.json`` are made from it, so the limits and routes they show
are the code's.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from infra.docs.environment import ROOT, platform_environment_cleared


@functools.cache
def openapi_schema() -> dict[str, Any]:
    """The schema the service publishes with the default settings (its limits included).

    Made in a process of its own (:func:`write_openapi_schema`): building the app configures MLflow
    for the whole process, which neither MkDocs nor a test process should inherit.
    """
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLOPS_")}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "openapi.json"
        done = subprocess.run(
            [sys.executable, "-m", "infra.docs.openapi", str(out)],
            env=environment,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the service's OpenAPI schema could not be made:\n{done.stderr[-3000:]}")
        schema: dict[str, Any] = json.loads(out.read_text())
        return schema


def write_openapi_schema(path: Path) -> None:
    """Build the service's app as ``create_app`` does with the default settings, write its schema."""
    from core.settings import Settings
    from model_serving.app import create_app

    with platform_environment_cleared(), tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(_env_file=None, home=Path(home)))  # type: ignore[call-arg]
        path.write_text(json.dumps(app.openapi()))


def main(argv: list[str] | None = None) -> int:
    """The process :func:`openapi_schema` starts: it writes the schema where it is told."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="where the schema (JSON) is written")
    write_openapi_schema(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

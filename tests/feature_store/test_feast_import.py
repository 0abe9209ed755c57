"""Feast imported the platform's way (:mod:`feature_store.feast_import`): without typeguard's import-time
instrumentation of its classes and without PyTorch, and with nothing left changed after it."""

from __future__ import annotations

import json
import subprocess
import sys

from core.settings import PROJECT_ROOT

PROBE = """
import json, sys
import typeguard
checked = typeguard.typechecked
{load}
import feast
from feast import FeatureView
report = {{
    "torch_loaded_with_feast": "torch" in sys.modules,
    # typeguard's instrumentation compiles argument checks into a method's code
    "feature_view_checked": "check_argument_types_internal" in FeatureView.__init__.__code__.co_names,
    "decorator_restored": typeguard.typechecked is checked,
    "finders_left": [type(f).__name__ for f in sys.meta_path if "Torch" in type(f).__name__],
}}
import torch  # the platform's own import of torch, later, loads it as usual
report["torch_after"] = torch.__name__
print(json.dumps(report))
"""


def _probe(load: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(load=load)], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_feast_loads_without_typeguards_instrumentation_or_torch_and_leaves_nothing_changed() -> None:
    assert _probe("from feature_store.feast_import import load_feast; load_feast()") == {
        "torch_loaded_with_feast": False,
        "feature_view_checked": False,
        "decorator_restored": True,
        "finders_left": [],
        "torch_after": "torch",
    }


def test_a_plain_import_of_feast_pays_both() -> None:
    """What the loader spares: the probe sees both costs when Feast is imported as it comes."""
    report = _probe("")
    assert (report["torch_loaded_with_feast"], report["feature_view_checked"]) == (True, True)

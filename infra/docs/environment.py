"""Where the generated pages are made from: this checkout, and none of the shell's platform settings.

The pages document the code and its defaults; a developer's ``MLOPS_*`` variables would otherwise
leak into them and make the site depend on who built it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def platform_environment_cleared() -> Iterator[None]:
    """No ``MLOPS_*`` variable of this shell reaches the pages, and nothing the app sets stays."""
    saved = dict(os.environ)
    for key in [key for key in os.environ if key.startswith("MLOPS_")]:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)

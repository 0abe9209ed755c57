"""The code version a model was trained by, recorded with every training run and model version."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache

from core.settings import PROJECT_ROOT

CODE_VERSION_ENV = "MLOPS_CODE_VERSION"


@lru_cache(maxsize=1)
def code_version() -> str:
    """``MLOPS_CODE_VERSION`` (set by the image build), else the git commit of the checkout (``-dirty``
    when it has uncommitted changes), else ``unknown``."""
    explicit = os.environ.get(CODE_VERSION_ENV)
    if explicit:
        return explicit

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit

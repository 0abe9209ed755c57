"""Debian's chromium driven by Playwright: the UI checks see the pages as a person does.

Playwright supports only the Chromium it downloads; the platform's tests use the system browser
(``chromium`` from Debian, installed by ``make test-servers``) through ``executable_path`` and
download nothing. Without the background-networking switches Chromium keeps calling Google's hosts,
which a closed network refuses.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT

SCREENSHOTS = PROJECT_ROOT / "reports" / "ui"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # root in CI containers
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium_path() -> str:
    """The system browser; a clear stop when it is missing rather than Playwright's download hint."""
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("chromium is not installed: run `make test-servers` (Debian package chromium)")
    return found


def launch(playwright: Any) -> Any:
    """A headless Debian chromium under Playwright."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def screenshot(page: Any, name: str, *, full_page: bool = False, locator: Any = None) -> Path:
    """Save what the page shows (or one element of it) as ``reports/ui/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if locator is not None:
        locator.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=full_page)
    assert path.read_bytes().startswith(b"\x89PNG"), path
    return path

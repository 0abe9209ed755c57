"""The docs site's pages made from the code when the site is built, so they cannot drift from it.

    make docs                                                          # mkdocs build --strict: this file is its hook
    .venv/bin/python infra/scripts/docs_pages.py                       # the pages it makes
    .venv/bin/python infra/scripts/docs_pages.py reference/settings.md # print one

``mkdocs.yml`` names this file under ``hooks:``. MkDocs then calls :func:`on_files`, which adds
these pages to the site (nothing is written into ``docs/``; a stand-in there, which readers on GitHub
find and which says :data:`PLACEHOLDER`, is replaced):

* ``reference/dataset-config.md``: every key of a dataset YAML, from :class:`core.dataset.DatasetConfig`
  and its nested models (names, types, constraints, defaults, descriptions);
* ``reference/settings.md``: every ``MLOPS_*`` variable, from :class:`core.settings.Settings`, with the
  value each profile gives it;
* ``reference/api.md`` and ``reference/openapi.json``: the forecasting service's OpenAPI schema, from
  the app that :func:`model_serving.app.create_app` builds with the default settings;

and :func:`on_page_markdown`, which replaces each marker of :data:`MARKERS` in its page: the layers
diagram and the contracts of ``architecture.md``, from ``[tool.importlinter]`` in ``pyproject.toml``.
A page without its marker fails the build.

This file is the entry point only; the pages are made by the modules of ``infra/docs/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def use_checkout() -> None:
    """Import the platform's packages from this checkout, wherever mkdocs runs from (MkDocs puts
    ``sys.path`` back after loading a hook, so each entry point calls this)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


use_checkout()

from infra.docs.api import api_page  # noqa: E402
from infra.docs.config_pages import dataset_config_page, settings_page  # noqa: E402
from infra.docs.layers import LAYERS_MARKER, PACKAGE_SEPARATOR, contracts_markdown  # noqa: E402
from infra.docs.openapi import openapi_schema  # noqa: E402

# tests/docs reads the pages and their parts through this module, as MkDocs does.
__all__ = [
    "LAYERS_MARKER",
    "MARKERS",
    "PACKAGE_SEPARATOR",
    "PAGES",
    "PLACEHOLDER",
    "api_page",
    "contracts_markdown",
    "dataset_config_page",
    "on_files",
    "on_page_markdown",
    "openapi_schema",
    "settings_page",
]

# What a stand-in of a generated page under docs/ says (it is replaced when the site is built).
PLACEHOLDER = "<!-- generated page: replaced when the site is built -->"

# Whole pages the site gains, by path under docs/: the page's text.
PAGES: dict[str, Callable[[], str]] = {
    "reference/dataset-config.md": dataset_config_page,
    "reference/settings.md": settings_page,
    "reference/api.md": lambda: api_page(openapi_schema()),
    "reference/openapi.json": lambda: json.dumps(openapi_schema(), indent=2) + "\n",
}
# Markers that pages under docs/ hold: each is replaced by what its function makes.
MARKERS: dict[str, dict[str, Callable[[], str]]] = {
    "architecture.md": {LAYERS_MARKER: contracts_markdown},
}


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated pages (mkdocs.structure.files.File.generated)."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    use_checkout()
    for path, make in PAGES.items():
        stand_in = files.get_file_from_path(path)
        if stand_in is not None:
            # A page read on GitHub, where nothing is built, says where the real one is; it must say
            # it is a stand-in, so that a page someone wrote is never replaced without a word.
            if PLACEHOLDER not in Path(stand_in.abs_src_path).read_text():
                raise PluginError(f"docs/{path} is generated when the site is built: remove the file")
            files.remove(stand_in)
        files.append(File.generated(config, path, content=make()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: replace each marker of the page with what it stands for; a missing marker fails."""
    from mkdocs.exceptions import PluginError

    use_checkout()
    for marker, make in MARKERS.get(page.file.src_uri, {}).items():
        if marker not in markdown:
            raise PluginError(f"docs/{page.file.src_uri} lost its marker {marker}: the generated part has no place")
        markdown = markdown.replace(marker, make())
    return markdown


def main(argv: list[str] | None = None) -> int:
    """Print the list of generated pages, or one of them: a page can be read without building the site."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", nargs="?", help="print this page (a path under docs/, or a page with markers)")
    args = parser.parse_args(argv)
    if args.page is None:
        print("\n".join([*PAGES, *(f"{page} (markers)" for page in MARKERS)]))
        return 0
    if args.page in PAGES:
        print(PAGES[args.page](), end="")
    elif args.page in MARKERS:
        for make in MARKERS[args.page].values():
            print(make(), end="")
    else:
        parser.error(f"no generated page {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

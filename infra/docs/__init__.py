"""The builders of the docs site's generated pages, one concern a module.

``infra/scripts/docs_pages.py`` is the MkDocs hook that puts them on the site (``mkdocs.yml`` names it);
the pages are made from the code when the site is built, so they cannot drift from it:

* :mod:`infra.docs.environment`: the checkout and the clean environment the pages are made in;
* :mod:`infra.docs.markdown`: Markdown text (table cells, code spans, tables);
* :mod:`infra.docs.fields`: a pydantic model's fields in words (types, constraints, defaults, comments);
* :mod:`infra.docs.config_pages`: the dataset config and settings references;
* :mod:`infra.docs.openapi`: the service's OpenAPI schema, made in a process of its own;
* :mod:`infra.docs.api`: the API reference, that schema as Markdown tables;
* :mod:`infra.docs.layers`: the architecture page's diagram and table of the import-linter contracts.
"""

"""The docs site's generated pages (infra/scripts/docs_pages.py, the MkDocs hook of `make docs`).

The dataset config reference must list every key the schema has, the settings reference every
setting, and the layers diagram of the architecture page must hold exactly the layers of the
import-linter contracts, read here from pyproject.toml on their own: generation that breaks or
drifts from the code fails here, before the site is built.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings

sys.path.insert(0, str(PROJECT_ROOT / "infra" / "scripts"))
import docs_pages

TABLE_KEY = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)


def keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every key of a model as a YAML file spells it, nested models' keys included."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        yield key
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                yield from keys(candidate, f"{key}.")


def test_the_dataset_reference_lists_every_field_of_the_dataset_config() -> None:
    page = docs_pages.dataset_config_page()
    expected = set(keys(DatasetConfig))
    assert {"name", "source.layout", "training.backtest.folds", "promotion.drift_window"} <= expected
    assert set(TABLE_KEY.findall(page)) == expected
    # Each nested model has its section, which the parent's type links to.
    for section in ("source", "training.backtest", "promotion", "daily"):
        anchor = section.replace(".", "-").replace("_", "-")
        assert f"{{#{anchor}}}" in page, section
        assert f"](#{anchor})" in page, section


def test_the_dataset_reference_shows_descriptions_and_defaults_from_the_code() -> None:
    rows = {key: row for key, row in re.findall(r"^\| `([^`]+)` \|(.*)$", docs_pages.dataset_config_page(), re.M)}
    assert DatasetConfig.model_fields["horizon"].description in rows["horizon"]
    assert "required" in rows["horizon"]
    assert "≥ 1" in rows["horizon"]
    assert "`P7D`" in rows["feature_engineering.ttl"]  # durations as a YAML file writes them
    assert "`[0.8, 0.95]`" in rows["intervals.levels"]


def test_the_settings_reference_lists_every_setting_with_its_variable() -> None:
    page = docs_pages.settings_page()
    assert set(TABLE_KEY.findall(page)) == {f"MLOPS_{name.upper()}" for name in Settings.model_fields}
    redis_host = next(line for line in page.splitlines() if line.startswith("| `MLOPS_REDIS_HOST`"))
    assert "`localhost`" in redis_host
    assert "compose: `redis`" in redis_host  # each profile's value where it differs


def contract_layers(contract: dict[str, Any]) -> list[list[str]]:
    """A layers contract's layers, top first, as import-linter reads them ("a | b", "a : b", "(optional)")."""
    layers = []
    for container in contract.get("containers") or [None]:
        for entry in contract["layers"]:
            names = [name.strip().strip("()").strip() for name in re.split(r"[|:]", entry) if name.strip()]
            layers.append([f"{container}.{name}" if container else name for name in names])
    return layers


def drawn_layers(diagram: str) -> list[list[str]]:
    """The boxes of a generated layers diagram, top first: the packages each one names."""
    boxes = re.findall(r'^\s*layer_(\d+)\["(.*)"\]$', diagram, re.MULTILINE)
    assert [int(number) for number, _ in boxes] == list(range(1, len(boxes) + 1))
    return [label.split("<br/>")[1].split(docs_pages.PACKAGE_SEPARATOR) for _, label in boxes]


def test_the_architecture_diagram_draws_the_layers_of_the_contract() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = [contract for contract in config["contracts"] if contract["type"] == "layers"]
    assert contracts, "pyproject.toml has no layers contract to draw"
    section = docs_pages.contracts_markdown()
    diagrams = re.findall(r"```mermaid\n(.*?)```", section, re.DOTALL)
    assert [drawn_layers(diagram) for diagram in diagrams] == [contract_layers(c) for c in contracts]
    for contract in config["contracts"]:  # and the table lists every contract, of any type
        assert f"| `{contract['id']}` | {contract['type']} |" in section


def test_the_architecture_page_keeps_the_place_of_the_generated_diagram() -> None:
    assert docs_pages.LAYERS_MARKER in (PROJECT_ROOT / "docs" / "architecture.md").read_text()
    assert "architecture.md" in docs_pages.MARKERS


def test_a_generated_page_under_docs_is_only_a_stand_in() -> None:
    """What the build replaces says so; anything else there would be lost without a word (the build refuses)."""
    for path in docs_pages.PAGES:
        page = PROJECT_ROOT / "docs" / path
        if page.exists():
            assert page.read_text().startswith(docs_pages.PLACEHOLDER), path


def test_the_api_reference_documents_every_route_of_the_service() -> None:
    schema = docs_pages.openapi_schema()
    page = docs_pages.api_page(schema)
    routes = {(method.upper(), path) for path, methods in schema["paths"].items() for method in methods}
    assert {("POST", "/v1/forecast"), ("GET", "/v1/forecasts"), ("POST", "/admin/reload")} <= routes
    for method, path in routes:
        assert f"### `{method} {path}`" in page
    for name in schema["components"]["schemas"]:
        assert f"### `{name}` {{#schema-" in page

"""The architecture page's section on how the packages depend on each other, from the import-linter
contracts of ``pyproject.toml``: a Mermaid diagram of each layers contract, then every contract in a table.

The contracts are what ``lint-imports`` enforces; drawing the page from them keeps the page and the
enforced rules one and the same.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.docs.environment import ROOT
from infra.docs.markdown import code, table

# What docs/architecture.md holds where the section goes (the build fails without it).
LAYERS_MARKER = "<!-- generated: import-linter contracts -->"


@dataclass(frozen=True)
class Layer:
    """A layer of a layers contract: its modules, and whether they may import each other."""

    modules: tuple[str, ...]
    independent: bool  # "a | b": the modules may not import each other; "a : b" they may


@dataclass(frozen=True)
class LayersContract:
    """A layers contract, top layer first; a contract with containers is one of these per container."""

    id: str
    name: str
    container: str | None
    layers: tuple[Layer, ...]


def importlinter_config(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, Any]:
    """``[tool.importlinter]``: the contracts ``lint-imports`` checks, read as it reads them."""
    config: dict[str, Any] = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    return config


def parse_layer(entry: str, container: str | None) -> Layer:
    """A layer as import-linter spells it: ``a | b`` (independent), ``a : b`` (not), ``(a)`` (optional)."""
    independent = ":" not in entry
    names = [name.strip() for name in re.split(r"[|:]", entry) if name.strip()]
    names = [name.strip("()").strip() for name in names]  # "(name)": optional, it need not exist
    return Layer(tuple(f"{container}.{name}" if container else name for name in names), independent)


def layers_contracts(config: dict[str, Any]) -> list[LayersContract]:
    """The layers contracts, one per container: each is a diagram of its own."""
    found = []
    for contract in config.get("contracts", []):
        if contract.get("type") != "layers":
            continue
        for container in contract.get("containers") or [None]:
            layers = tuple(parse_layer(entry, container) for entry in contract["layers"])
            found.append(LayersContract(contract.get("id", ""), contract.get("name", ""), container, layers))
    return found


# Between the packages of a layer in the diagram's boxes (what tests/docs reads them back by).
PACKAGE_SEPARATOR = " · "


def layers_mermaid(contract: LayersContract) -> str:
    """The contract's layers, top to bottom, as a Mermaid flowchart: one box per layer with its packages
    (and whether they may import each other), an arrow from each layer to the next one down."""
    title = f"contract {contract.id}" + (f", container {contract.container}" if contract.container else "")
    lines = ["flowchart TB", f"    %% generated from pyproject.toml [tool.importlinter], {title}"]
    for number, layer in enumerate(contract.layers, start=1):
        position = " (top)" if number == 1 else " (base)" if number == len(contract.layers) else ""
        label = [f"<b>layer {number}{position}</b>", PACKAGE_SEPARATOR.join(layer.modules)]
        if len(layer.modules) > 1:
            label.append("<i>independent of each other</i>" if layer.independent else "<i>may import each other</i>")
        lines.append(f'    layer_{number}["{"<br/>".join(label)}"]')
    lines += [f"    layer_{n} -- imports --> layer_{n + 1}" for n in range(1, len(contract.layers))]
    return "\n".join(lines)


def modules_text(modules: list[str]) -> str:
    """Module names as code spans, in a list a sentence can hold."""
    return ", ".join(code(module) for module in modules)


def contracts_markdown(config: dict[str, Any] | None = None) -> str:
    """The diagram of each layers contract, then every contract in a table: what the section of the
    architecture page that says how the packages depend on each other is made of."""
    config = config if config is not None else importlinter_config()
    out = []
    layered: set[str] = set()
    for contract in layers_contracts(config):
        layered |= {module for layer in contract.layers for module in layer.modules}
        out += [
            f"Contract `{contract.id}`: {contract.name}."
            + (f" Container: `{contract.container}`." if contract.container else ""),
            "",
            "```mermaid",
            layers_mermaid(contract),
            "```",
            "",
        ]
    outside = [package for package in config.get("root_packages", []) if package not in layered]
    if outside:
        out += [f"Packages in no layer: {modules_text(outside)}.", ""]
    rows = [
        [code(contract.get("id", "")), contract.get("type", ""), contract.get("name", ""), contract_rule(contract)]
        for contract in config.get("contracts", [])
    ]
    out += [
        f"All {len(rows)} contracts of `pyproject.toml` (`make lint` and `make test` run them with `lint-imports`):",
        "",
        table(["contract", "type", "what it says", "rule"], rows),
    ]
    return "\n".join(out) + "\n"


def contract_rule(contract: dict[str, Any]) -> str:
    """What a contract forbids, in a sentence of module names; a kind this does not know shows its keys."""
    kind = contract.get("type", "")
    if kind == "layers":
        rule = " above ".join(" / ".join(parse_layer(entry, None).modules) for entry in contract["layers"])
        if contract.get("containers"):
            rule += f" (in each of {modules_text(contract['containers'])})"
    elif kind == "forbidden":
        rule = f"{modules_text(contract.get('source_modules', []))} may not import " + modules_text(
            contract.get("forbidden_modules", [])
        )
        if contract.get("ignore_imports"):
            rule += f"; except {modules_text(contract['ignore_imports'])}"
    elif kind == "independence":
        rule = f"{modules_text(contract.get('modules', []))} import none of each other"
    else:
        rule = "; ".join(
            f"{key}: {modules_text(value) if isinstance(value, list) else code(str(value))}"
            for key, value in contract.items()
            if key not in {"id", "name", "type"}
        )
    return rule

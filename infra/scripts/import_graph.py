"""Print the import graph between the project's top-level packages (grimp, import-linter's own graph).

    .venv/bin/python infra/scripts/import_graph.py          # package -> packages it imports
    .venv/bin/python infra/scripts/import_graph.py --cycles # and every pair that imports both ways

One line per package: the packages of ours it imports (directly, at any depth of its modules, lazy
imports inside functions included), then the third-party packages of note. The architecture contracts
that keep this graph in shape are in ``pyproject.toml`` (``[tool.importlinter]``, run by ``make lint``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
# Third-party packages whose presence in a package's imports says something about its layer.
NOTABLE = ("airflow", "great_expectations", "evidently", "optuna", "torch", "feast", "mlflow", "fastapi")


def our_packages() -> list[str]:
    """Top-level folders with an ``__init__.py`` (tests and scripts excepted)."""
    return sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in {"tests"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", action="store_true", help="also list the pairs of packages that import each other")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    packages = our_packages()
    graph = grimp.build_graph(*packages, include_external_packages=True, cache_dir=None)
    edges: dict[str, set[str]] = {}
    for package in packages:
        imported: set[str] = set()
        for module in graph.find_descendants(package) | {package}:
            for target in graph.find_modules_directly_imported_by(module):
                imported.add(target.split(".")[0])
        edges[package] = imported - {package}
    for package in packages:
        ours = sorted(edges[package] & set(packages))
        notable = sorted(edges[package] & set(NOTABLE))
        print(
            f"{package:<18} -> {', '.join(ours) or '(nothing of ours)'}"
            + (f"   [{', '.join(notable)}]" if notable else "")
        )
    if args.cycles:
        pairs = sorted({tuple(sorted((a, b))) for a in packages for b in edges[a] if b in packages and a in edges[b]})
        print("cycles: " + ("; ".join(f"{a} <-> {b}" for a, b in pairs) if pairs else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

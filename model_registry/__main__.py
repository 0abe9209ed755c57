"""``python -m model_registry promote --dataset CONFIG [--version N]``."""

from __future__ import annotations

import argparse
import sys

from configs.cli import add_common_args, resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_registry", description=__doc__)
    parser.add_argument("command", choices=["promote"])
    add_common_args(parser)
    parser.add_argument("--version", default=None, help="model version (default: the challenger)")
    args = parser.parse_args(argv)
    settings, dataset, _ = resolve(args)
    from model_registry.registry import promote

    decision = promote(settings, settings.model_name(dataset.name), args.version)
    verdict = "promoted to champion" if decision.promoted else "NOT promoted"
    print(f"{settings.model_name(dataset.name)} v{decision.version} {verdict}: {decision.reason}")
    return 0 if decision.promoted else 3


if __name__ == "__main__":
    sys.exit(main())

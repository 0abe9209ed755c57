"""``python -m feature_store {build,apply,materialize} --dataset CONFIG --logical-date YYYY-MM-DD``.

build: features from validated data -> Feast offline source; apply: register definitions;
materialize: offline -> online store up to the end of the logical date.
"""

from __future__ import annotations

import argparse
import sys

from core.cli import add_common_args, resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feature_store", description=__doc__)
    parser.add_argument("command", choices=["build", "apply", "materialize"])
    add_common_args(parser)
    args = parser.parse_args(argv)
    settings, dataset, logical_date = resolve(args)
    if args.command == "build":
        from feature_store.build import write_offline_source

        print(f"offline source: {write_offline_source(settings, dataset, logical_date).path}")
    elif args.command == "apply":
        from feature_store.repo import apply

        apply(settings, dataset)
        print(f"applied feature definitions of {dataset.name} to {settings.feast_repo}")
    else:
        from core.windows import end_of
        from feature_store.repo import materialize

        loaded = materialize(settings, dataset, end_of(logical_date))
        store = settings.online_store
        print(f"materialized {dataset.name} features from {loaded.start} to {loaded.end} ({store} online store)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

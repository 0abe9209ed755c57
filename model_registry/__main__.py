"""``python -m model_registry {register,promote} --dataset CONFIG``.

register: the training run (``--run-id``, or the newest run tagged ``--tag key=value``) becomes a
new version with alias ``challenger``. promote: the challenger (or ``--version``) becomes the
champion if it passes the champion/challenger gate.
"""

from __future__ import annotations

import argparse
import sys

from configs.cli import add_common_args, resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_registry", description=__doc__)
    parser.add_argument("command", choices=["register", "promote"])
    add_common_args(parser)
    parser.add_argument("--run-id", default=None, help="register: the training run")
    parser.add_argument("--tag", default=None, help="register: key=value of the training run to find")
    parser.add_argument("--version", default=None, help="promote: model version (default: the challenger)")
    args = parser.parse_args(argv)
    settings, dataset, _ = resolve(args)
    model_name = settings.model_name(dataset.name)
    from model_registry import registry

    if args.command == "register":
        run_id = args.run_id
        if run_id is None:
            if not args.tag or "=" not in args.tag:
                parser.error("register needs --run-id or --tag key=value")
            key, value = args.tag.split("=", 1)
            run_id = registry.find_run(settings, key, value)
        registered = registry.register_challenger(settings, model_name, run_id)
        print(f"{model_name} version {registered.version} is the challenger (run {run_id})")
        return 0

    from model_registry.tracking import CHALLENGER, client
    from model_validation.champion import evaluate_challenger

    version = args.version or str(client(settings).get_model_version_by_alias(model_name, CHALLENGER).version)
    decision = evaluate_challenger(settings, dataset, model_name, version)
    if not decision.passed:
        print(f"{model_name} v{version} NOT promoted: {decision.reason}")
        return 3
    registry.promote_version(settings, model_name, version, decision.reason)
    print(f"{model_name} v{version} promoted to champion: {decision.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

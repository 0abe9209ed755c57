"""``python -m model_registry {register,promote,rollback} --dataset CONFIG``.

register: the training run (``--run-id``, or the newest run tagged ``--tag key=value``) becomes a
new version with alias ``challenger``. promote: the challenger (or ``--version``) becomes the
champion if it beats the champion and seasonal naive on the holdout of ``--logical-date``'s
training window. rollback: the champion alias moves back to ``previous`` (or ``--version``).
"""

from __future__ import annotations

import argparse
import json
import sys

from configs.cli import add_common_args, resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_registry", description=__doc__)
    parser.add_argument("command", choices=["register", "promote", "rollback"])
    add_common_args(parser)
    parser.add_argument("--run-id", default=None, help="register: the training run")
    parser.add_argument("--tag", default=None, help="register: key=value of the training run to find")
    parser.add_argument(
        "--version", default=None, help="promote: model version (default: the challenger); rollback: target version"
    )
    parser.add_argument("--reason", default="", help="rollback (required) and promote: why, recorded on the version")
    args = parser.parse_args(argv)
    settings, dataset, logical_date = resolve(args)
    model_name = settings.model_name(dataset.name)
    from model_registry import promotion, registry

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

    if args.command == "rollback":
        if not args.reason.strip():
            parser.error("rollback needs --reason")
        try:
            move = promotion.rollback(settings, model_name, args.reason, args.version)
        except promotion.RollbackError as exc:
            print(f"nothing rolled back: {exc}", file=sys.stderr)
            return 4
        print(json.dumps(move.as_dict()))
        return 0

    from model_registry.tracking import CHALLENGER, client
    from model_validation.champion import evaluate_challenger, holdout_of

    version = args.version or str(client(settings).get_model_version_by_alias(model_name, CHALLENGER).version)
    decision = evaluate_challenger(settings, dataset, model_name, version, holdout_of(settings, dataset, logical_date))
    if not decision.passed:
        print(f"{model_name} v{version} NOT promoted: {decision.reason}")
        return 3
    reason = f"{decision.reason}; {args.reason}" if args.reason else decision.reason
    promotion.promote_version(settings, model_name, version, reason, expected_champion=decision.champion_version)
    print(f"{model_name} v{version} promoted to champion: {decision.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

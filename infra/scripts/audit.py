"""Known vulnerabilities in the pinned requirements: ``make audit`` (pip-audit, then the ignore list).

    python infra/scripts/audit.py --ignore-file infra/audit/ignored-vulnerabilities.toml \\
        --out reports/audit.json requirements.txt requirements-dev.txt ...

Runs in ``.venv-audit`` with nothing but the standard library and pip-audit, so the audit's own
dependencies never enter the platform's lock. Each file is named, not reached through ``-r``: with
``--disable-pip`` pip-audit does not follow includes. Passes only when every pinned package was
audited and every vulnerability found is on the ignore list; an entry there needs a reason and a
review date, and one past that date fails the audit until someone looks at it again.

pip-audit's own ``--strict`` stops at the first package it cannot audit and writes no report, so the
same rule is applied here to the whole report instead, naming every such package. When not a single
package could be audited, the vulnerability service was out of reach: exit code 3 tells that apart
from a finding (1), and ``--if-unreachable warn`` turns it into a warning where the network is known
to lack the service.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IGNORE_FILE = PROJECT_ROOT / "infra" / "audit" / "ignored-vulnerabilities.toml"
ENTRY_KEYS = {"id", "package", "reason", "review_by"}

PASSED, FAILED, UNREACHABLE = 0, 1, 3


def normalize(name: str) -> str:
    """PEP 503 names: requirement files and pip-audit spell the same package differently."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(paths: list[Path]) -> dict[str, str]:
    """Package -> pinned version over the files; includes (``-r``) and options are skipped."""
    pins = {}
    for path in paths:
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            name, _, version = line.partition("==")
            pins[normalize(name.split("[")[0])] = version.strip()
    return pins


def load_ignored(path: Path) -> list[dict[str, Any]]:
    entries = tomllib.loads(path.read_text()).get("vulnerability", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: `vulnerability` must be an array of tables ([[vulnerability]])")
    return entries


def policy_problems(entries: list[dict[str, Any]], pins: dict[str, str], today: date | None = None) -> list[str]:
    """What is wrong with the ignore list, one line each; empty when every entry can stand.

    An accepted vulnerability must say why it is accepted and when to look again, and belong to a
    package still pinned: an entry outliving its package would silently accept the id elsewhere.
    ``today=None`` leaves the review dates unchecked (a test must not start failing on a date).
    """
    problems = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"entry {number} ({entry.get('id', 'no id')})"
        if unknown := set(entry) - ENTRY_KEYS:
            problems.append(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(ENTRY_KEYS)}")
        vuln_id = entry.get("id")
        if not isinstance(vuln_id, str) or not vuln_id.strip():
            problems.append(f"{where}: no id")
        elif vuln_id in seen:
            problems.append(f"{where}: listed twice")
        else:
            seen.add(vuln_id)
        package = entry.get("package")
        if not isinstance(package, str) or not package.strip():
            problems.append(f"{where}: no package")
        elif normalize(package) not in pins:
            problems.append(f"{where}: {package} is not pinned in the audited requirements; drop the entry")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            problems.append(f"{where}: no reason")
        review_by = entry.get("review_by")
        if not isinstance(review_by, date):
            problems.append(f"{where}: review_by must be a date (review_by = YYYY-MM-DD)")
        elif today is not None and review_by < today:
            problems.append(f"{where}: review date {review_by} has passed; review it and set a new one")
    return problems


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: list[str]
    fix_versions: list[str]


@dataclass(frozen=True)
class Outcome:
    audited: int
    not_audited: list[str]  # "package: why"
    ignored: list[Finding]
    unlisted: list[Finding]
    unused_ignores: list[str]  # ids on the list that no finding matched

    @property
    def code(self) -> int:
        if self.audited == 0 and self.not_audited:
            return UNREACHABLE
        return FAILED if self.unlisted or self.not_audited else PASSED


def judge(report: dict[str, Any], entries: list[dict[str, Any]]) -> Outcome:
    """Sort pip-audit's JSON report against the ignore list (matched by id or alias, and package)."""
    accepted = {(normalize(e["package"]), e["id"]) for e in entries}
    audited, not_audited, ignored, unlisted = 0, [], [], []
    used: set[str] = set()
    for dependency in report["dependencies"]:
        if "skip_reason" in dependency:
            not_audited.append(f"{dependency['name']}: {dependency['skip_reason']}")
            continue
        audited += 1
        for vuln in dependency.get("vulns", []):
            finding = Finding(
                package=dependency["name"],
                version=dependency["version"],
                id=vuln["id"],
                aliases=list(vuln.get("aliases", [])),
                fix_versions=list(vuln.get("fix_versions", [])),
            )
            names = {(normalize(finding.package), i) for i in [finding.id, *finding.aliases]}
            if matched := names & accepted:
                used.update(i for _, i in matched)
                ignored.append(finding)
            else:
                unlisted.append(finding)
    unused = [e["id"] for e in entries if e["id"] not in used]
    return Outcome(audited, not_audited, ignored, unlisted, unused)


def run_pip_audit(requirements: list[Path], service: str, osv_url: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "audit.json"
        argv = [sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip", "--progress-spinner", "off"]
        argv += ["--vulnerability-service", service, "--format", "json", "--output", str(output)]
        if osv_url:
            argv += ["--osv-url", osv_url]
        for path in requirements:
            argv += ["--requirement", str(path)]
        # Exit code 1 means "vulnerabilities found"; the report says which, and the ignore list decides.
        process = subprocess.run(argv, capture_output=True, text=True)
        if process.returncode not in (0, 1) or not output.exists():
            raise RuntimeError(f"pip-audit failed (exit {process.returncode}):\n{process.stderr}")
        report: dict[str, Any] = json.loads(output.read_text())
        return report


PYPI_PROJECT_JSON = "https://pypi.org/pypi/{name}/json"


def latest_release_advisories(name: str) -> tuple[str, list[dict[str, Any]]]:
    """PyPI's project page in JSON: its newest version and the advisories PyPI lists against it."""
    with urllib.request.urlopen(PYPI_PROJECT_JSON.format(name=name), timeout=30) as answer:
        project = json.load(answer)
    return str(project["info"]["version"]), list(project.get("vulnerabilities") or [])


def fill_from_latest_release(
    report: dict[str, Any],
    pins: dict[str, str],
    lookup: Callable[[str], tuple[str, list[dict[str, Any]]]] = latest_release_advisories,
) -> int:
    """Audit what pip-audit skipped from PyPI's project pages, where the pin is the newest release.

    pip-audit reads each release's own JSON page; a network that serves only the project pages (the
    package index) leaves every package skipped. A project page lists the advisories of the newest
    release, so for a pin that *is* the newest release it answers the same question. Other pins stay
    not audited, with the reason. Returns how many packages this audited.
    """
    skipped = [d for d in report["dependencies"] if "skip_reason" in d]

    def look(dependency: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, list[dict[str, Any]]] | str]:
        try:
            return dependency, lookup(dependency["name"])
        except (OSError, ValueError, KeyError) as exc:
            return dependency, f"PyPI project page unreadable: {exc}"

    filled = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for dependency, answer in pool.map(look, skipped):
            if isinstance(answer, str):
                dependency["skip_reason"] += f"; {answer}"
                continue
            latest, advisories = answer
            # pip-audit leaves the version out of a skipped package's entry: the pin says it.
            dependency.setdefault("version", pins.get(normalize(dependency["name"]), ""))
            if latest != dependency["version"]:
                dependency["skip_reason"] += f"; not the newest release ({latest}), whose advisories PyPI lists"
                continue
            del dependency["skip_reason"]
            dependency["audited_by"] = "pypi project page (newest release)"
            dependency["vulns"] = [
                {"id": a["id"], "aliases": a.get("aliases") or [], "fix_versions": a.get("fixed_in") or []}
                for a in advisories
                if not a.get("withdrawn")
            ]
            filled += 1
    return filled


def describe(finding: Finding) -> str:
    fix = ", ".join(finding.fix_versions) or "no fixed version"
    aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
    return f"{finding.package}=={finding.version}: {finding.id}{aliases}; fixed in: {fix}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("requirements", type=Path, nargs="+", help="fully pinned requirement files")
    parser.add_argument("--ignore-file", type=Path, default=IGNORE_FILE)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "audit.json")
    parser.add_argument("--service", choices=("pypi", "osv"), default="pypi", help="pip-audit's vulnerability data")
    parser.add_argument("--osv-url", default=None, help="an OSV mirror, with --service osv")
    parser.add_argument(
        "--if-unreachable",
        choices=("fail", "warn"),
        default="fail",
        help="when vulnerability data is out of reach for some or all packages: fail, or warn and judge the rest",
    )
    args = parser.parse_args(argv)

    entries = load_ignored(args.ignore_file)
    if problems := policy_problems(entries, pinned(args.requirements), date.today()):
        print(f"{args.ignore_file}:", *problems, sep="\n  ", file=sys.stderr)
        return FAILED
    try:
        report = run_pip_audit(args.requirements, args.service, args.osv_url)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return FAILED
    if args.service == "pypi" and any("skip_reason" in d for d in report["dependencies"]):
        filled = fill_from_latest_release(report, pinned(args.requirements))
        print(f"{filled} packages skipped by pip-audit were audited from PyPI's project pages (newest release)")
    outcome = judge(report, entries)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**report, "policy": {**asdict(outcome), "code": outcome.code}}, indent=2) + "\n")

    print(f"audited {outcome.audited} pinned packages against {args.service}; report: {args.out}")
    for finding in outcome.ignored:
        print(f"  ignored (listed in {args.ignore_file.name}): {describe(finding)}")
    for vuln_id in outcome.unused_ignores:
        print(f"  note: {vuln_id} is on the ignore list but was not reported; drop it if it stays so")
    if outcome.code == UNREACHABLE:
        print(f"NOT AUDITED: none of the {len(outcome.not_audited)} packages could be audited; the first said:")
        print(f"  {outcome.not_audited[0]}")
        if args.service == "pypi":
            print("  (pip-audit reads each release's https://pypi.org/pypi/<name>/<version>/json)")
        if args.if_unreachable == "warn":
            print(f"WARNING: no vulnerability data from {args.service}; the audit did not run")
            return PASSED
        return UNREACHABLE
    for line in outcome.not_audited:
        print(f"  not audited: {line}")
    for finding in outcome.unlisted:
        print(f"  VULNERABLE: {describe(finding)}")
    if outcome.code == FAILED and not outcome.unlisted and args.if_unreachable == "warn":
        print(
            f"WARNING: {len(outcome.not_audited)} packages not audited (no vulnerability data); none found vulnerable"
        )
        return PASSED
    if outcome.code == FAILED:
        print(
            f"FAILED: {len(outcome.unlisted)} vulnerabilities not on the ignore list, "
            f"{len(outcome.not_audited)} packages not audited"
        )
    else:
        print(f"passed: {len(outcome.ignored)} known vulnerabilities ignored with a reason, none other")
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())

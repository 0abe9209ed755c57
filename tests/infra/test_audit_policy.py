"""The vulnerability ignore list: every entry carries a reason and belongs to a pinned package."""

from __future__ import annotations

import importlib.util
import re
import sys
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

from core.settings import PROJECT_ROOT


def _load_audit() -> ModuleType:
    # The script runs in .venv-audit, outside the project's packages: load it from its path.
    spec = importlib.util.spec_from_file_location("audit_script", PROJECT_ROOT / "infra" / "scripts" / "audit.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


audit = _load_audit()


def audited_files() -> list[Path]:
    """The requirement files `make audit` names."""
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    match = re.search(r"^AUDITED\s*:=\s*(.+)$", makefile, re.MULTILINE)
    assert match, "Makefile: no AUDITED := ... line"
    return [PROJECT_ROOT / name for name in match.group(1).split()]


def entry(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "GHSA-aaaa-bbbb-cccc",
        "package": "urllib3",
        "reason": "only reachable through proxies we do not configure",
        "review_by": date(2027, 1, 31),
        **overrides,
    }


PINS = {"urllib3": "2.8.0", "ruamel-yaml": "0.19.1"}


def test_every_ignored_vulnerability_has_an_id_a_pinned_package_a_reason_and_a_review_date() -> None:
    entries = audit.load_ignored(audit.IGNORE_FILE)
    assert audit.policy_problems(entries, audit.pinned(audited_files())) == []


def test_the_audit_names_every_file_an_audited_file_includes() -> None:
    """pip-audit with --disable-pip does not follow ``-r``: an include left off would go unaudited."""
    files = audited_files()
    assert all(path.exists() for path in files)
    for path in files:
        for line in path.read_text().splitlines():
            if line.startswith(("-r ", "--requirement ")):
                assert path.parent / line.split()[1] in files, f"{path.name} includes {line}"


def test_a_complete_entry_passes_and_package_names_compare_normalized() -> None:
    assert audit.policy_problems([entry(), entry(id="PYSEC-2026-1", package="ruamel.yaml")], PINS) == []


def test_an_entry_without_a_reason_is_refused() -> None:
    for reason in ("", "   ", None):
        problems = audit.policy_problems([entry(reason=reason)], PINS)
        assert problems == ["entry 1 (GHSA-aaaa-bbbb-cccc): no reason"]
    assert audit.policy_problems([{k: v for k, v in entry().items() if k != "reason"}], PINS) != []


def test_an_entry_for_a_package_no_longer_pinned_is_stale() -> None:
    [problem] = audit.policy_problems([entry(package="requests")], PINS)
    assert "requests is not pinned" in problem


def test_ids_review_dates_and_keys_are_checked() -> None:
    assert "no id" in audit.policy_problems([entry(id="")], PINS)[0]
    assert "listed twice" in audit.policy_problems([entry(), entry()], PINS)[0]
    assert "review_by must be a date" in audit.policy_problems([entry(review_by="soon")], PINS)[0]
    assert "unknown keys ['resaon']" in audit.policy_problems([entry(resaon="typo")], PINS)[0]
    expired = entry(review_by=date(2026, 1, 1))
    assert audit.policy_problems([expired], PINS) == []  # no date given: not checked
    assert "has passed" in audit.policy_problems([expired], PINS, today=date(2026, 1, 2))[0]


def _report(*dependencies: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(dependencies), "fixes": []}


def _vulnerable(name: str, vuln_id: str, *aliases: str) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "vulns": [{"id": vuln_id, "aliases": list(aliases), "fix_versions": []}]}


def test_a_listed_vulnerability_passes_by_id_or_alias_and_an_unlisted_one_fails() -> None:
    entries = [entry(id="CVE-2026-1", package="urllib3")]
    listed = audit.judge(_report(_vulnerable("urllib3", "GHSA-x", "CVE-2026-1")), entries)
    assert (listed.code, len(listed.ignored), listed.unlisted, listed.unused_ignores) == (0, 1, [], [])

    other_package = audit.judge(_report(_vulnerable("requests", "CVE-2026-1")), entries)
    assert other_package.code == 1
    assert [f.package for f in other_package.unlisted] == ["requests"]
    assert other_package.unused_ignores == ["CVE-2026-1"]


def test_a_package_that_could_not_be_audited_fails_and_none_audited_is_unreachable() -> None:
    clean = {"name": "urllib3", "version": "2.8.0", "vulns": []}
    skipped = {"name": "private-pkg", "skip_reason": "Dependency not found on PyPI"}
    assert audit.judge(_report(clean), []).code == audit.PASSED
    assert audit.judge(_report(clean, skipped), []).code == audit.FAILED
    assert audit.judge(_report(skipped), []).code == audit.UNREACHABLE


def test_packages_pip_audit_skipped_are_audited_from_the_project_page_only_when_pinned_at_the_newest() -> None:
    report = {
        "dependencies": [
            {"name": "Fresh_Pkg", "skip_reason": "Dependency not found on PyPI"},  # pip-audit omits the version
            {"name": "stale", "version": "1.0", "skip_reason": "Dependency not found on PyPI"},
            {"name": "direct", "version": "3.0", "vulns": []},
        ]
    }
    pages = {
        "Fresh_Pkg": (
            "2.0",
            [{"id": "PYSEC-1", "aliases": ["CVE-1"], "fixed_in": ["2.1"]}, {"id": "W", "withdrawn": "x"}],
        ),
        "stale": ("1.5", [{"id": "PYSEC-2"}]),  # its advisories are the newest release's, not 1.0's
    }
    pins = {"fresh-pkg": "2.0", "stale": "1.0", "direct": "3.0"}
    assert audit.fill_from_latest_release(report, pins, lambda name: pages[name]) == 1
    fresh, stale, _ = report["dependencies"]
    assert fresh["vulns"] == [{"id": "PYSEC-1", "aliases": ["CVE-1"], "fix_versions": ["2.1"]}]
    assert "skip_reason" not in fresh
    assert "not the newest release (1.5)" in stale["skip_reason"]
    assert "vulns" not in stale
    outcome = audit.judge(report, [])
    assert outcome.audited == 2
    assert [f.id for f in outcome.unlisted] == ["PYSEC-1"]
    assert outcome.code == audit.FAILED

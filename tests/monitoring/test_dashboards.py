"""Grafana dashboards against their metrics: units, thresholds, legends and variables.

No Grafana runs here, so what Grafana would do with a panel is checked on the dashboard JSON: the
unit it formats values in must be the unit of the metric the expression reads (one rule, read off
the expression, below), its thresholds must be numbers in that unit and agree with the alert rules
on the same metric, its legends must name every series apart, and the dashboard variables must
resolve, against a real Prometheus that scraped the service and the batch jobs' pushes (the shared
``scrape`` fixture), to values that make every panel return data.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import yaml

from model_serving.metrics import LATENCY_BUCKETS
from tests.utils.prometheus import ALERT_RULES, DASHBOARDS, Scrape, query_until_data

# Grafana unit ids, grouped by what a panel shows.
COUNTS = frozenset({"none", "short"})  # things counted, or values in the data's own unit (MAE, forecasts)
RATES = frozenset({"reqps", "ops"})  # a counter per second; a dashboard picks one of them
SHARES = frozenset({"percentunit"})  # 0-1
SECONDS = frozenset({"s"})
BYTES = frozenset({"bytes"})
SHARE_WORDS = ("ratio", "share", "coverage")
# What the expression does to a unit: `* 1000` turns seconds into milliseconds, `/ 3600` into hours...
SCALINGS = {
    ("s", r"\*\s*1000\b"): "ms",
    ("s", r"/\s*60\b"): "m",
    ("s", r"/\s*3600\b"): "h",
    ("s", r"/\s*86400\b"): "d",
    ("percentunit", r"\*\s*100\b"): "percent",
}
# Units whose numbers convert into each other: (dimension, size in the dimension's base unit).
# Counts are left out on purpose: an increase over 15 minutes and one over an hour are not the same
# number, so an alert's bound on a count says nothing about a panel's.
SCALES = {
    "ms": ("time", 0.001),
    "s": ("time", 1.0),
    "m": ("time", 60.0),
    "h": ("time", 3600.0),
    "d": ("time", 86400.0),
    "percentunit": ("share", 1.0),
    "percent": ("share", 0.01),
}
PLAUSIBLE = {"percentunit": (0.0, 1.0), "percent": (0.0, 100.0)}
# histogram_quantile never returns more than a histogram's highest finite bucket, so a latency threshold
# above it is never crossed: 50 on a panel in s is 50 ms written in the wrong unit.
LONGEST_LATENCY_S = max(LATENCY_BUCKETS)
COLOURED_BY_THRESHOLDS = {"stat", "gauge", "bargauge"}  # Grafana's default there is red at 80, in no unit
# Grafana's own variables, filled in as a dashboard would over the last hour.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


@dataclass(frozen=True)
class Target:
    """One query of a panel, with where it sits for the messages."""

    dashboard: str
    panel: dict[str, Any]
    expr: str
    legend: str | None

    def at(self, field: str) -> str:
        return f"{self.dashboard} / {self.panel['title']!r} / {field}"


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in DASHBOARDS}


def targets() -> list[Target]:
    return [
        Target(name, panel, target["expr"], target.get("legendFormat"))
        for name, dashboard in dashboards().items()
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def unit_of(panel: dict[str, Any]) -> str | None:
    return panel.get("fieldConfig", {}).get("defaults", {}).get("unit")


def thresholds_of(panel: dict[str, Any]) -> dict[str, Any] | None:
    return panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds")


def threshold_values(panel: dict[str, Any]) -> list[float]:
    """The steps' values; the base step's is null (everything below the first value)."""
    steps = (thresholds_of(panel) or {}).get("steps", [])
    return [float(step["value"]) for step in steps if step.get("value") is not None]


# --- What an expression reads -------------------------------------------------------------------


def bare(expr: str) -> str:
    """The expression without strings, label matchers, ranges and grouping label lists: functions,
    metric names, numbers and operators are left (``route=~"/v1/..."`` is no division)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    return re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)


def metric_names(expr: str) -> list[str]:
    names = re.findall(r"(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()", bare(expr))
    return [name for name in names if name not in PROMQL_WORDS]


def family(name: str) -> str:
    """The metric a sample name belongs to (a histogram's ``_bucket``, ``_sum``, ``_count``; a counter's ``_total``)."""
    return re.sub(r"_(?:bucket|sum|count|total)$", "", name)


def families(expr: str) -> set[str]:
    return {family(name) for name in metric_names(expr)}


def own_units(names: list[str]) -> frozenset[str]:
    """The unit the metrics' names state (Prometheus names end in their base unit), or none when
    they state different ones: a query that mixes units has no single unit to show."""
    units = set()
    for name in {family(name) for name in names}:
        if name.endswith("_seconds"):
            units.add(SECONDS)
        elif name.endswith("_bytes"):
            units.add(BYTES)
        elif any(word in name for word in SHARE_WORDS):
            units.add(SHARES)
        else:
            units.add(COUNTS)
    return units.pop() if len(units) == 1 else frozenset()


def expected_units(expr: str) -> frozenset[str]:
    """The Grafana units a panel may show ``expr`` in.

    - a histogram's quantile, or its ``_sum`` rate over its ``_count`` rate (the mean): the
      observations' unit (``_seconds`` -> ``s``);
    - one counter's rate over another's (an error rate): a share, ``percentunit``;
    - a counter's rate alone: per second, ``reqps`` or ``ops``; its increase over a window: a count;
    - anything else (gauges, ``time() - a timestamp``): the unit its metric's name states, a share
      when the name says ratio, share or coverage, else a count (``none``/``short``);
    then scaled as the expression scales it: ``* 1000`` seconds are ``ms``, ``/ 3600`` are ``h``,
    ``/ 86400`` are ``d``, ``* 100`` shares are ``percent``.
    """
    text = bare(expr)
    rated = re.findall(r"\b(?:rate|irate)\s*\(\s*([a-zA-Z_:][\w:]*)", text)
    if "histogram_quantile" in text:
        units = own_units([name for name in metric_names(expr) if name.endswith("_bucket")])
    elif len(rated) >= 2 and "/" in text:
        is_mean = {name.rsplit("_", 1)[-1] for name in rated} == {"sum", "count"}
        units = own_units(rated) if is_mean else SHARES
    elif rated:
        return RATES
    elif re.search(r"\bincrease\s*\(", text):
        return COUNTS
    else:
        units = own_units(metric_names(expr))
    for (unit, pattern), scaled in SCALINGS.items():
        if units == {unit} and re.search(pattern, text):
            return frozenset({scaled})
    return units


def test_every_panel_unit_matches_the_metric_it_shows() -> None:
    """Grafana formats a panel's numbers in its unit: seconds shown as ``none`` or a share as ``s``
    read wrong by orders of magnitude, so each target's unit follows from its expression."""
    wrong = []
    rate_units: dict[str, set[str]] = {}
    for target in targets():
        unit, expected = unit_of(target.panel), expected_units(target.expr)
        if not expected:
            wrong.append(f"{target.at('targets')}: {target.expr} mixes metrics of different units")
        elif unit not in expected:
            wrong.append(
                f"{target.at('fieldConfig.defaults.unit')} is {unit!r}, but {target.expr} is in {sorted(expected)}"
            )
        if expected == RATES and unit is not None:
            rate_units.setdefault(target.dashboard, set()).add(unit)
    wrong += [
        f"{name}: rates shown in {sorted(units)}, pick one" for name, units in rate_units.items() if len(units) > 1
    ]
    assert not wrong, "\n".join(wrong)


def test_the_unit_rule_reads_expressions_as_intended() -> None:
    """The rule itself, on the shapes the dashboards and alerts use (a wrong rule would pass wrong panels)."""
    latency = 'histogram_quantile(0.99, sum by (le) (rate(x_duration_seconds_bucket{route=~"/v1/.*"}[5m])))'
    assert expected_units(latency) == {"s"}
    assert expected_units(f"{latency} * 1000") == {"ms"}
    assert expected_units("sum(rate(x_seconds_count{status=~'5..'}[1m])) / sum(rate(x_seconds_count[1m]))") == SHARES
    assert expected_units("sum(rate(x_seconds_count[1m])) / sum(rate(x_seconds_count[1m])) * 100") == {"percent"}
    assert expected_units("sum(rate(x_entities_sum[1m])) / sum(rate(x_entities_count[1m]))") == COUNTS
    assert expected_units("sum(rate(x_latency_seconds_sum[1m])) / sum(rate(x_latency_seconds_count[1m]))") == SECONDS
    assert expected_units("sum by (status) (rate(x_seconds_count[$__rate_interval]))") == RATES
    assert expected_units("sum by (outcome) (increase(x_reloads_total[1h]))") == COUNTS
    assert expected_units("(time() - x_timestamp_seconds) / 86400") == {"d"}
    assert expected_units('x_drift_share{dataset="$dataset"}') == SHARES
    assert expected_units("x_resident_memory_bytes") == BYTES
    assert expected_units("x_latency_seconds + x_rows") == frozenset()


# --- Thresholds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """What an alert rule compares a metric with: a number in the left side's unit, or another series."""

    alert: str
    families: frozenset[str]
    units: frozenset[str]
    value: float | None
    series: frozenset[str]


def split_comparison(expr: str) -> tuple[str, str, str] | None:
    """``left op right`` at the expression's first comparison outside parentheses, braces and strings."""
    depth, quoted = 0, False
    for i, char in enumerate(expr):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and (op := re.match(r"[<>!=]=|[<>]", expr[i:])):
            return expr[:i], op.group(), expr[i + len(op.group()) :]
    return None


def constant(text: str) -> float | None:
    """A number or a product of numbers (``7 * 86400``), as the alert rules write their bounds."""
    try:
        return math.prod(float(factor) for factor in text.split("*"))
    except ValueError:
        return None


def alert_bounds() -> list[Bound]:
    """Every alert that bounds a metric from above or below (``== 0`` is a state, not a bound)."""
    bounds = []
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for rule in (rule for group in rules["groups"] for rule in group["rules"]):
        split = split_comparison(rule["expr"])
        if split is None or split[1] not in (">", ">=", "<", "<="):
            continue
        left, _, right = split
        value = constant(right)
        series = frozenset() if value is not None else frozenset(families(right))
        bounds.append(Bound(rule["alert"], frozenset(families(left)), expected_units(left), value, series))
    return bounds


def convert(value: float, unit: str, to: str) -> float | None:
    """``value`` in ``unit`` expressed in ``to``, None when they measure different things."""
    (dimension, size), (to_dimension, to_size) = SCALES[unit], SCALES[to]
    return value * size / to_size if dimension == to_dimension else None


def panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, panel) for name, dashboard in dashboards().items() for panel in dashboard["panels"]]


def panel_families(panel: dict[str, Any]) -> set[str]:
    return set().union(*(families(target["expr"]) for target in panel["targets"]))


def test_thresholds_are_numbers_in_the_panel_unit() -> None:
    """Thresholds are compared with the values as shown, so they are absolute numbers in the panel's
    unit, drawn where the panel is a graph, and explicit where they colour the value (stat, bar gauge)."""
    wrong = []
    for name, panel in panels():
        where = f"{name} / {panel['title']!r} / fieldConfig.defaults.thresholds"
        thresholds, unit, values = thresholds_of(panel), unit_of(panel), threshold_values(panel)
        if panel["type"] in COLOURED_BY_THRESHOLDS and not (thresholds or {}).get("steps"):
            wrong.append(f"{where}: none, so Grafana's default (red at 80, in no unit) colours the value")
        if thresholds is None:
            continue
        if thresholds.get("mode") != "absolute":
            wrong.append(f"{where}: mode {thresholds.get('mode')!r}, not a number in {unit!r} (use 'absolute')")
        low, high = PLAUSIBLE.get(unit or "", (-math.inf, math.inf))
        wrong += [f"{where}: {value:g} is outside [{low:g}, {high:g}] for unit {unit!r}" for value in values
                  if not low <= value <= high]  # fmt: skip
        if unit in SCALES and any(f.endswith("_duration_seconds") for f in panel_families(panel)):
            for value in values:
                seconds = convert(value, unit, "s")
                if seconds is not None and seconds > LONGEST_LATENCY_S:
                    wrong.append(
                        f"{where}: {value:g} {unit} is above the latency histograms' highest bucket "
                        f"({LONGEST_LATENCY_S:g} s), never crossed (ms on a panel in {unit}?)"
                    )
        style = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get("thresholdsStyle", {})
        if values and panel["type"] == "timeseries" and style.get("mode", "off") == "off":
            wrong.append(f"{where}: {values} are not drawn (set custom.thresholdsStyle.mode)")
    assert not wrong, "\n".join(wrong)


def test_panels_of_an_alerted_metric_show_the_alert_bound() -> None:
    """A panel that shows what an alert watches marks where it fires: its threshold equals the
    alert's bound in the panel's unit (7 days is 7 on a panel in ``d``, 0.05 s is 50 on one in ``ms``),
    or, when the bound is another series (a dataset's own limit), the panel shows that series too."""
    bounds = alert_bounds()
    assert {bound.alert for bound in bounds if bound.value is not None} >= {"ForecastLatencyP99High"}, bounds
    missing = []
    for name, panel in panels():
        shown, unit, values = panel_families(panel), unit_of(panel), threshold_values(panel)
        where = f"{name} / {panel['title']!r}"
        for bound in (bound for bound in bounds if bound.families & shown):
            if bound.series and not bound.series <= shown:
                missing.append(f"{where} / targets: no {sorted(bound.series - shown)}, the bound of {bound.alert}")
            if bound.value is None or len(bound.units) != 1 or unit not in SCALES:
                continue
            (alert_unit,) = bound.units
            expected = convert(bound.value, alert_unit, unit) if alert_unit in SCALES else None
            if expected is not None and not any(math.isclose(value, expected) for value in values):
                missing.append(
                    f"{where} / fieldConfig.defaults.thresholds: no step at {expected:g} {unit}, where "
                    f"{bound.alert} fires ({bound.value:g} {alert_unit}); steps: {values}"
                )
    assert not missing, "\n".join(missing)


# --- Variables and legends, against a real scrape -----------------------------------------------


def variable_names(text: str) -> set[str]:
    return {next(name for name in match.groups() if name) for match in VARIABLE.finditer(text)}


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with Grafana's ``$name``, ``${name}`` and ``[[name]]`` replaced (unknown ones kept)."""

    def value(match: re.Match[str]) -> str:
        return values.get(next(name for name in match.groups() if name), match.group())

    return VARIABLE.sub(value, text)


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return str(query["query"] if isinstance(query, dict) else query)


def label_values(query: str) -> tuple[str | None, str] | None:
    """(selector, label) of Grafana's ``label_values(selector, label)`` or ``label_values(label)``."""
    match = re.fullmatch(r"\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*", query)
    return (match[1], match[2]) if match else None


def resolve(prometheus: str, dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """Each variable's values as Grafana lists them from Prometheus's label values API, in the
    dashboard's order (a variable's query may use the ones above it, filled with their first value)."""
    chosen, resolved = dict(BUILTINS), {}
    for variable in dashboard["templating"]["list"]:
        query = fill(variable_query(variable), chosen)
        parsed = label_values(query)
        assert parsed, f"{dashboard['uid']} / variable {variable['name']}: only label_values() is checked: {query}"
        selector, label = parsed
        if selector:
            query_until_data(prometheus, selector)  # the push is scraped within a second or two
        params = {"match[]": selector} if selector else {}
        body = requests.get(f"{prometheus}/api/v1/label/{label}/values", params=params, timeout=5).json()
        assert body["status"] == "success", (query, body)
        resolved[variable["name"]] = list(body["data"])
        chosen[variable["name"]] = next(iter(body["data"]), "")
    return resolved


def selection(dashboard: dict[str, Any], resolved: dict[str, list[str]], every: bool = False) -> dict[str, str]:
    """What Grafana puts in place of each variable: its first value, or with ``every`` its "All" where
    it offers one (``allValue``, else every value as a regex), so that every series shows."""
    chosen = dict(BUILTINS)
    for variable in dashboard["templating"]["list"]:
        values = resolved.get(variable["name"]) or [""]
        everything = variable.get("allValue") or "(" + "|".join(map(re.escape, values)) + ")"
        chosen[variable["name"]] = everything if every and variable.get("includeAll") else values[0]
    return chosen


def render(legend: str, labels: dict[str, str]) -> str:
    """The name Grafana gives a series: the legend with ``{{label}}`` filled from the series."""
    return LEGEND_LABEL.sub(lambda match: labels.get(match[1], ""), legend)


@pytest.mark.integration
@pytest.mark.slow
def test_variables_resolve_and_every_panel_follows_them(scrape: Scrape) -> None:
    """A variable whose query lists nothing leaves its dashboard empty, and a panel that ignores a
    selector its series carry shows every dataset or entity under a title that says one: each
    variable must list values from the real scrape, and every panel, filled with them, return data."""
    problems = []
    for name, dashboard in dashboards().items():
        variables = dashboard["templating"]["list"]
        for variable in variables:
            definition = variable.get("definition", variable_query(variable))
            if definition != variable_query(variable):
                problems.append(f"{name} / variable {variable['name']}: definition {definition!r} is not its query")
        resolved = resolve(scrape.prometheus, dashboard)
        empty = [f"{name} / variable {var}: no values from the scrape" for var, got in resolved.items() if not got]
        if empty:  # the panels would only wait for data that cannot come
            problems += empty
            continue
        chosen = selection(dashboard, resolved)
        selected = {parsed[1]: v["name"] for v in variables if (parsed := label_values(variable_query(v)))}
        for target in (target for target in targets() if target.dashboard == name):
            unknown = variable_names(target.expr) - chosen.keys()
            if unknown:
                problems.append(f"{target.at('expr')}: uses {sorted(unknown)}, which no variable defines")
                continue
            series = query_until_data(scrape.prometheus, fill(target.expr, chosen))
            if not series:
                problems.append(f"{target.at('expr')}: no data with {chosen}: {fill(target.expr, chosen)}")
            # A selector some panels ignore misleads: a panel of series that carry the selected label follows it.
            carried = {label for one in series for label in one["metric"]}
            problems += [f"{target.at('expr')}: its series carry {label!r} but it ignores ${variable}"
                         for label, variable in selected.items()
                         if label in carried and variable not in variable_names(target.expr)]  # fmt: skip
    assert not problems, "\n".join(problems)


@pytest.mark.integration
@pytest.mark.slow
def test_legends_name_every_series(scrape: Scrape) -> None:
    """Each series gets a legend of its own, from labels its series really carry: without a
    ``legendFormat`` Grafana shows the raw ``{__name__=...}``, and a label that varies but is left out
    of the legend gives several lines one name."""
    problems = []
    chosen = {name: selection(d, resolve(scrape.prometheus, d), every=True) for name, d in dashboards().items()}
    shown: dict[str, list[str]] = {}
    for target in targets():
        where = target.at(f"legendFormat {target.legend!r}")
        if not target.legend or target.legend == "__auto":
            problems.append(f"{where}: Grafana would name the series {{__name__=...}}")
            continue
        used = set(LEGEND_LABEL.findall(target.legend))
        grouped = {label.strip() for clause in re.findall(r"\bby\s*\(([^)]*)\)", target.expr)
                   for label in clause.split(",")} - {"le", ""}  # fmt: skip
        if grouped - used:
            problems.append(f"{where}: the query keeps {sorted(grouped - used)}, the legend does not show them")
        series = [
            one["metric"] for one in query_until_data(scrape.prometheus, fill(target.expr, chosen[target.dashboard]))
        ]
        if not series:
            problems.append(f"{where}: no series to name, {target.expr} returns no data")
            continue
        carried = set().union(*series)
        if used - carried:
            problems.append(
                f"{where}: {sorted(used - carried)} are on none of its series, which carry {sorted(carried)}"
            )
        varying = {label for label in carried if len({one.get(label) for one in series}) > 1}
        if varying - used:
            problems.append(f"{where}: {sorted(varying - used)} vary between its series but are not in the legend")
        names = shown.setdefault(target.at("legends"), [])
        names += [render(target.legend, one) for one in series]
    problems += [f"{where}: {names} name different series alike" for where, names in shown.items()
                 if len(names) != len(set(names))]  # fmt: skip
    assert not problems, "\n".join(problems)

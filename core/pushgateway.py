"""Pushing a batch job's figures to the Prometheus Pushgateway (batch jobs are not scraped).

In the base layer because jobs of both upper layers push: the promotion decision (a retraining run
finished) and the daily watchers (drift, realized accuracy, nightly backtest), which may not import
each other. ``prometheus_client`` is imported only when a push happens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figure:
    name: str
    help: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def push_figures(settings: Settings, job: str, grouping: dict[str, str], figures: list[Figure]) -> bool:
    """Replace the job's group on the Pushgateway; returns False (and logs) when none is configured."""
    if not settings.pushgateway_url:
        log.info("no pushgateway configured; figures of %s: %s", job, [(f.name, f.labels, f.value) for f in figures])
        return False
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    for figure in figures:
        gauge = gauges.get(figure.name)
        if gauge is None:
            gauge = Gauge(figure.name, figure.help, sorted(figure.labels), registry=registry)
            gauges[figure.name] = gauge
        (gauge.labels(**figure.labels) if figure.labels else gauge).set(figure.value)
    push_to_gateway(settings.pushgateway_url, job=job, grouping_key=grouping, registry=registry, timeout=10)
    return True

"""The days a consumer run judges come from its triggering asset events (asset-triggered runs have no
logical date), in order, each once, however many events one run folds together."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

from orchestration import assets


def _event(day: str | None) -> SimpleNamespace:
    return SimpleNamespace(extra={} if day is None else {assets.DATA_DATE: day})


def test_folded_events_give_their_days_in_order_each_once() -> None:
    events = [_event("2024-04-02"), _event("2024-04-01"), _event("2024-04-02"), _event(None)]
    assert assets.days_of(events) == [date(2024, 4, 1), date(2024, 4, 2)]


def test_a_run_without_events_of_the_asset_has_no_days() -> None:
    online, validated = assets.online_features("ett"), assets.validated("ett")
    assert assets.triggering_days({}, online) == []  # started by hand or by time
    context = {"triggering_asset_events": {validated: [_event("2024-04-01")]}}
    assert assets.triggering_days(context, online) == []
    context = {"triggering_asset_events": {online: [_event("2024-04-03")]}}
    assert assets.triggering_days(context, online) == [date(2024, 4, 3)]


def test_a_producer_names_its_day_in_the_event() -> None:
    online = assets.online_features("ett")
    event = SimpleNamespace(extra={})
    assets.record_day({"outlet_events": {online: event}}, online, date(2024, 4, 1))
    assert event.extra == {assets.DATA_DATE: "2024-04-01"}

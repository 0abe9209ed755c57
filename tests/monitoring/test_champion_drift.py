"""The daily drift check's streak: when drift calls for retraining, and from which day of data."""

from datetime import date

from monitoring.outcomes import CheckState


def test_retraining_needs_n_drifted_checks_in_a_row() -> None:
    from monitoring.champion_drift import CheckRecord, consecutive_drifted

    drifted, steady, unknown = CheckState.DRIFTED, CheckState.STEADY, CheckState.UNKNOWN

    def history(*states: CheckState, triggered_at: int | None = None) -> list[CheckRecord]:
        return [CheckRecord(f"2024-04-{day + 1:02d}", s, day == triggered_at) for day, s in enumerate(states)]

    assert consecutive_drifted(history(steady, drifted, drifted)) == 2
    assert consecutive_drifted(history(drifted, drifted, steady)) == 0
    assert consecutive_drifted(history(drifted, unknown, drifted)) == 1  # too little data breaks a streak
    assert consecutive_drifted(history(drifted, drifted, drifted, triggered_at=1)) == 1  # a trigger ends one
    assert consecutive_drifted(list(reversed(history(steady, drifted, drifted)))) == 2  # order of the records


def test_a_streak_counts_days_of_new_data_not_checks() -> None:
    """Checks that judged a day already judged add nothing; a clean day of new data ends the streak."""
    from monitoring.champion_drift import CheckRecord, consecutive_drifted, judged_before

    drifted, steady, stale = CheckState.DRIFTED, CheckState.STEADY, CheckState.NO_NEW_DATA
    monday = CheckRecord("2024-04-08", drifted, False, "2024-04-07")
    repeats = [CheckRecord(f"2024-04-{d}", stale, False, "2024-04-07") for d in (9, 10, 11)]
    assert consecutive_drifted([monday, *repeats]) == 1  # one window judged once, then found again
    tuesday = CheckRecord("2024-04-12", drifted, False, "2024-04-11")
    assert consecutive_drifted([monday, *repeats, tuesday]) == 2
    # the streak follows the days of data, whatever the order the checks ran in (a backfilled day)
    late = CheckRecord("2024-04-13", steady, False, "2024-04-09")
    assert consecutive_drifted([monday, tuesday, late]) == 1
    assert consecutive_drifted([monday, tuesday, CheckRecord("2024-04-14", steady, False, "2024-04-12")]) == 0
    # a day is new for any check but the one that judged it (a retried check judges it again)
    assert judged_before([monday], date(2024, 4, 9), date(2024, 4, 7)) == monday
    assert judged_before([monday], date(2024, 4, 8), date(2024, 4, 7)) is None
    assert judged_before([monday, *repeats], date(2024, 4, 12), date(2024, 4, 11)) is None
    assert judged_before(repeats, date(2024, 4, 12), date(2024, 4, 7)) is None  # stale checks judged nothing


def test_the_streak_names_its_first_day_of_data() -> None:
    """Where the retraining's holdout starts: the oldest day of the drifted streak, not of the checks."""
    from monitoring.champion_drift import CheckRecord, drifted_streak

    drifted, steady = CheckState.DRIFTED, CheckState.STEADY
    history = [
        CheckRecord("2024-04-05", steady, False, "2024-04-04"),
        CheckRecord("2024-04-06", drifted, False, "2024-04-05"),
        CheckRecord("2024-04-09", drifted, False, "2024-04-08"),  # two days of data came late, in one run
        CheckRecord("2024-04-09", drifted, False, "2024-04-06"),
        CheckRecord("2024-04-09", drifted, False, "2024-04-07"),
    ]
    assert [r.day for r in drifted_streak(history)] == ["2024-04-08", "2024-04-07", "2024-04-06", "2024-04-05"]
    assert drifted_streak([*history, CheckRecord("2024-04-10", steady, False, "2024-04-09")]) == []

"""The reconciler's schedule: fast while a payment is young, sparse when it is old."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from connector.payments.outcomes import Outcomes
from connector.settings import Settings


def outcomes(**values: Any) -> Outcomes:
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    return Outcomes(database=None, settings=settings, payments=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("age", "interval"),
    [
        (timedelta(seconds=0), timedelta(seconds=1)),  # never more often than the interval
        (timedelta(seconds=30), timedelta(seconds=3)),  # a tenth of the age
        (timedelta(hours=1), timedelta(seconds=300)),  # never sparser than the maximum
        (timedelta(days=3), timedelta(seconds=300)),
    ],
)
def test_checks_thin_out_with_age(age: timedelta, interval: timedelta) -> None:
    schedule = outcomes(reconcile_interval_seconds=1, reconcile_max_interval_seconds=300)
    assert schedule.check_interval(age) == interval


def test_a_boleto_pending_for_three_days_costs_hundreds_of_checks_not_thousands() -> None:
    schedule = outcomes(reconcile_interval_seconds=1, reconcile_max_interval_seconds=300)
    age, checks = timedelta(0), 0
    while age < timedelta(days=3):
        age += schedule.check_interval(age)
        checks += 1
    assert 800 < checks < 1000  # about 864 at the 5-minute cap, vs 259,200 at one a second

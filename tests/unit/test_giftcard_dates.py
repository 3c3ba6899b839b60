"""Gift card dates: read with or without a zone, always answered as UTC with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from protocol.giftcards import CreateCardRequest, format_date


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2020-09-01T13:15:30Z", datetime(2020, 9, 1, 13, 15, 30, tzinfo=UTC)),
        ("2020-09-01T13:15:30", datetime(2020, 9, 1, 13, 15, 30, tzinfo=UTC)),
        ("2020-09-01T10:15:30-03:00", datetime(2020, 9, 1, 13, 15, 30, tzinfo=UTC)),
        ("2036-01-01", datetime(2036, 1, 1, tzinfo=UTC)),
    ],
)
def test_dates_are_read_as_utc(sent: str, stored: datetime) -> None:
    parsed = CreateCardRequest.model_validate({"expiringDate": sent}).expiring_date
    assert parsed == stored and parsed is not None and parsed.utcoffset() is not None


@pytest.mark.parametrize(
    "sent", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "yesterday", "2020-13-01"]
)
def test_dates_outside_utc_or_malformed_are_refused(sent: str) -> None:
    with pytest.raises(ValidationError):
        CreateCardRequest.model_validate({"emissionDate": sent})


def test_dates_are_written_with_four_digit_years_and_milliseconds() -> None:
    assert format_date(datetime(999, 1, 2, 3, 4, 5, 678_999, tzinfo=UTC)) == (
        "0999-01-02T03:04:05.678Z"
    )
    assert format_date(datetime(2026, 11, 28, 9, 18, 37, 123_456, tzinfo=UTC)) == (
        "2026-11-28T09:18:37.123Z"
    )

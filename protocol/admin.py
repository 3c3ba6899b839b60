"""Wire models of the operators' admin API (`/admin`, bearer token): issuing, loading, blocking
and inspecting gift cards; deciding anti-fraud reviews. The same models read the rows of a
bulk-issue CSV file."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.giftcards import WireDate


class _Strict(BaseModel):
    # Operators' typos must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class IssueCardItem(_Strict):
    amount: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    profile_id: str | None = Field(default=None, alias="profileId", max_length=200)
    restricted_to_owner: bool = Field(default=False, alias="restrictedToOwner")
    caption: str | None = Field(default=None, max_length=200)
    relation_name: str | None = Field(default=None, alias="relationName", max_length=200)
    expiring_date: WireDate | None = Field(default=None, alias="expiringDate")
    multiple_redemptions: bool = Field(default=True, alias="multipleRedemptions")
    multiple_credits: bool = Field(default=True, alias="multipleCredits")


class IssueCardRequest(IssueCardItem):
    merchant: str = Field(min_length=1, max_length=100)


class IssueCardsRequest(_Strict):
    merchant: str = Field(min_length=1, max_length=100)
    cards: list[IssueCardItem] = Field(min_length=1, max_length=1000)


class CreditRequest(_Strict):
    amount: Decimal = Field(gt=0, allow_inf_nan=False)
    reason: str = Field(min_length=1, max_length=400)
    # Makes a retried load safe; generated when absent.
    request_id: str | None = Field(default=None, alias="requestId", min_length=1, max_length=200)


class StatusChangeRequest(_Strict):
    reason: str = Field(min_length=1, max_length=400)


class ReviewDecisionRequest(_Strict):
    """An operator's decision on an order in the anti-fraud review queue."""

    decision: Literal["approved", "denied"]
    reason: str = Field(min_length=1, max_length=500)

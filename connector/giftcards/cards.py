"""Gift cards themselves: what the Hub searches and reads, what it and operators issue, and what
operators block and inspect. Money moves in `ledger.py`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError

from connector.db.engine import Database
from connector.db.tables import GiftCard, GiftCardEntry, GiftCardTransaction, Merchant, utcnow
from connector.errors import BadRequest, NotFound
from connector.giftcards import views
from connector.giftcards.ledger import MAX_MINOR, GiftCardLedger, to_card_minor
from connector.giftcards.repository import GiftCardRepository
from connector.security import (
    BlindIndex,
    FieldCipher,
    generate_public_id,
    generate_redemption_code,
    generate_redemption_token,
    is_masked,
    normalize_redemption_code,
    redemption_code_digest,
)
from connector.settings import Settings
from protocol.admin import IssueCardItem
from protocol.giftcards import (
    CardDetail,
    CardSummary,
    CreateCardRequest,
    CreatedCard,
    Link,
    SearchRequest,
)
from protocol.money import InvalidAmount, from_minor, to_minor

_CODE_ATTEMPTS = 3


@dataclass(frozen=True)
class IssueOrder:
    """What an operator (CLI, admin API, CSV row) asks for: a card, loaded with `amount`."""

    amount: Decimal = Decimal(0)
    currency: str | None = None
    profile_id: str | None = None
    restricted_to_owner: bool = False
    caption: str | None = None
    relation_name: str | None = None
    expiring_date: datetime | None = None
    multiple_redemptions: bool = True
    multiple_credits: bool = True


@dataclass(frozen=True)
class IssuedCard:
    """A new card with its redemption code in full: shown once, never stored."""

    card: GiftCard
    redemption_code: str


@dataclass
class CardReport:
    """Everything an operator wants to see about one card."""

    card: GiftCard
    owner: str | None
    ledger_available: int
    ledger_held: int
    transactions: list[GiftCardTransaction] = field(default_factory=list)
    entries: list[GiftCardEntry] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return (self.ledger_available, self.ledger_held) == (
            self.card.available_minor,
            self.card.held_minor,
        )


class GiftCardService:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        cipher: FieldCipher,
        blind_index: BlindIndex,
        ledger: GiftCardLedger,
    ) -> None:
        self._db = database
        self._settings = settings
        self._cipher = cipher
        self._blind_index = blind_index
        self._ledger = ledger

    @property
    def provider(self) -> str:
        return self._settings.giftcard_provider_name

    # ------------------------------------------------------------------------- the Hub

    async def search(
        self, merchant: Merchant, request: SearchRequest, offset: int, limit: int, base: str
    ) -> tuple[list[CardSummary], int]:
        """The shopper's usable cards and the voucher whose code they typed; `[]` rather than
        a card with nothing to pay (VTEX: a zero balance "can break the gift card flow")."""
        owners: list[bytes] = []
        if request.client is not None:
            client = request.client
            for identifier in (client.id, client.email, client.document, client.corporate_document):
                if identifier and identifier.strip():
                    owners.append(self._blind_index.digest(identifier))
        code = request.cart.redemption_code if request.cart else None
        code_digest = None
        if code and not is_masked(code) and normalize_redemption_code(code):
            code_digest = redemption_code_digest(code)
        now = utcnow()
        async with self._db.reader() as session:
            cards, total = await GiftCardRepository(session).search(
                merchant.id, owners, code_digest, now, offset, limit
            )
        return [views.summary(base, card, self.provider, now) for card in cards], total

    async def card(self, merchant: Merchant, card_id: str, base: str) -> CardDetail:
        async with self._db.reader() as session:
            card = await GiftCardRepository(session).card(merchant.id, card_id)
        if card is None:
            raise NotFound(f"no gift card {card_id!r}", code="card-not-found")
        return views.detail(base, card, self.provider, utcnow())

    async def create(
        self, merchant: Merchant, request: CreateCardRequest, base: str
    ) -> CreatedCard:
        """`POST /giftcards`: a card at zero, loaded later by a Credit (as VTEX's own provider)."""
        order = IssueOrder(
            currency=request.currency_code,
            profile_id=request.profile_id,
            restricted_to_owner=request.restricted_to_owner,
            caption=request.caption,
            relation_name=request.relation_name,
            expiring_date=request.expiring_date,
            multiple_redemptions=request.multiple_redemptions,
            multiple_credits=request.multiple_credits,
        )
        issued = await self.issue(merchant, order, emission_date=request.emission_date)
        card = issued.card
        return CreatedCard(
            id=card.card_id,
            relation_name=card.relation_name,
            caption=card.caption,
            profile_id=request.profile_id,
            emission_date=card.emission_date,
            expiring_date=card.expiring_date,
            restricted_to_owner=card.restricted_to_owner,
            multiple_redemptions=card.multiple_redemptions,
            multiple_credits=card.multiple_credits,
            currency_code=card.currency,
            redemption_token=card.redemption_token,
            redemption_code=issued.redemption_code,
            balance=from_minor(card.available_minor, card.currency),
            provider=self.provider,
            transactions=Link(href=f"{views.card_href(base, card)}/transactions"),
        )

    # ------------------------------------------------------------------------- operators

    async def issue(
        self,
        merchant: Merchant,
        order: IssueOrder,
        *,
        emission_date: datetime | None = None,
        actor: str = "hub",
    ) -> IssuedCard:
        checked = self._checked(order, "")
        return (await self._issue(merchant, [(order, checked)], actor, emission_date))[0]

    async def issue_many(
        self, merchant: Merchant, orders: list[IssueOrder], actor: str
    ) -> list[IssuedCard]:
        """Every order is checked first, then all cards are issued in one database transaction:
        a bad row, or a failure half-way, issues nothing."""
        checked = [
            (order, self._checked(order, f"row {number}: "))
            for number, order in enumerate(orders, start=1)
        ]
        return await self._issue(merchant, checked, actor, None)

    def _checked(self, order: IssueOrder, where: str) -> tuple[str, int, str | None]:
        """(currency, amount in minor units, owner), or 400 saying what is wrong and where."""
        currency = (order.currency or self._settings.giftcard_default_currency).upper()
        try:
            amount = to_minor(order.amount, currency)
        except InvalidAmount as error:
            raise BadRequest(f"{where}{error}", code="invalid-amount") from error
        if amount > MAX_MINOR:
            raise BadRequest(f"{where}amount must be at most {MAX_MINOR} minor units",
                             code="invalid-amount")  # fmt: skip
        owner = order.profile_id.strip() if order.profile_id and order.profile_id.strip() else None
        if order.restricted_to_owner and owner is None:
            raise BadRequest(f"{where}a card restricted to its owner needs a profileId",
                             code="owner-required")  # fmt: skip
        if order.expiring_date is not None and order.expiring_date <= utcnow():
            raise BadRequest(f"{where}expiringDate is in the past", code="invalid-expiry")
        return currency, amount, owner

    async def _issue(
        self,
        merchant: Merchant,
        orders: list[tuple[IssueOrder, tuple[str, int, str | None]]],
        actor: str,
        emission_date: datetime | None,
    ) -> list[IssuedCard]:
        for attempt in range(_CODE_ATTEMPTS):
            issued = []
            try:
                async with self._db.writer() as session:
                    repo = GiftCardRepository(session)
                    for order, (currency, amount, owner) in orders:
                        code = generate_redemption_code()
                        card = self._new_card(merchant, order, currency, owner, code, emission_date)
                        await repo.add_card(card)
                        # In the same database transaction: a card never exists half-issued.
                        if amount > 0:
                            await self._ledger.load(
                                repo, card, amount, "issue", f"issued by {actor}"
                            )
                            await repo.refresh(card)
                        issued.append(IssuedCard(card=card, redemption_code=code))
                return issued
            except IntegrityError:
                # Two equal codes (or ids) have odds of about n / 2**80: draw them again.
                if attempt == _CODE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _new_card(
        self,
        merchant: Merchant,
        order: IssueOrder,
        currency: str,
        owner: str | None,
        code: str,
        emission_date: datetime | None,
    ) -> GiftCard:
        return GiftCard(
            id=uuid.uuid4(),
            merchant_id=merchant.id,
            card_id=generate_public_id(),
            redemption_token=generate_redemption_token(),
            code_digest=redemption_code_digest(code),
            code_last4=normalize_redemption_code(code)[-4:],
            relation_name=order.relation_name or f"giftcard-{uuid.uuid4().hex[:12]}",
            caption=order.caption,
            owner_digest=self._blind_index.digest(owner) if owner else None,
            owner=self._cipher.encrypt_json(owner) if owner else None,
            restricted_to_owner=order.restricted_to_owner,
            multiple_redemptions=order.multiple_redemptions,
            multiple_credits=order.multiple_credits,
            currency=currency,
            status="active",
            emission_date=emission_date or utcnow(),
            expiring_date=order.expiring_date,
            available_minor=0,
            held_minor=0,
            redemptions=0,
            credits=0,
        )

    async def credit(
        self, card_id: str, amount: Decimal, request_id: str | None, actor: str, reason: str
    ) -> GiftCardTransaction:
        card = await self._any_card(card_id)
        minor = to_card_minor(amount, card)  # the Hub's bounds: above 0, at most MAX_MINOR
        request_id = request_id or f"operator:{uuid.uuid4().hex}"
        return await self._ledger.credit_as_operator(
            card, minor, request_id, note=f"{actor}: {reason}"[:500]
        )

    async def set_blocked(self, card_id: str, blocked: bool, actor: str, reason: str) -> GiftCard:
        card = await self._any_card(card_id)
        async with self._db.writer() as session:
            await GiftCardRepository(session).set_status(
                card.id, "blocked" if blocked else "active", f"{actor}: {reason}"[:500]
            )
        return await self._any_card(card_id)

    async def report(self, card_id: str) -> CardReport:
        async with self._db.reader() as session:
            repo = GiftCardRepository(session)
            card = await repo.card(None, card_id)
            if card is None:
                raise NotFound(f"no gift card {card_id!r}", code="card-not-found")
            available, held = await repo.ledger_totals(card.id)
            transactions, _ = await repo.transactions(card.id, 0, 1000)
            entries = await repo.entries(card.id)
        owner = self._cipher.decrypt_json(card.owner) if card.owner else None
        return CardReport(card, owner, available, held, transactions, entries)

    async def list(
        self, merchant: Merchant | None, status: str | None, offset: int, limit: int
    ) -> list[GiftCard]:
        async with self._db.reader() as session:
            return await GiftCardRepository(session).list_cards(
                merchant.id if merchant else None, status, offset, limit
            )

    async def _any_card(self, card_id: str) -> GiftCard:
        async with self._db.reader() as session:
            card = await GiftCardRepository(session).card(None, card_id)
        if card is None:
            raise NotFound(f"no gift card {card_id!r}", code="card-not-found")
        return card


def card_as_json(card: GiftCard, merchant_name: str | None = None) -> dict[str, Any]:
    """An operator's view of a card (CLI and admin API): never the code, only its last group."""
    return {
        "id": card.card_id,
        "merchant": merchant_name,
        "status": card.status,
        "statusReason": card.status_reason,
        "currency": card.currency,
        "available": float(from_minor(card.available_minor, card.currency)),
        "held": float(from_minor(card.held_minor, card.currency)),
        "redemptionCode": f"****-****-****-{card.code_last4}",
        "caption": card.caption,
        "relationName": card.relation_name,
        "restrictedToOwner": card.restricted_to_owner,
        "multipleRedemptions": card.multiple_redemptions,
        "multipleCredits": card.multiple_credits,
        "emissionDate": card.emission_date.isoformat(),
        "expiringDate": card.expiring_date.isoformat() if card.expiring_date else None,
    }


def issued_as_json(issued: IssuedCard, merchant_name: str) -> dict[str, Any]:
    """A new card for the operator who issued it: the only time its code is shown in full."""
    return {
        **card_as_json(issued.card, merchant_name),
        "redemptionCode": issued.redemption_code,
        "redemptionToken": issued.card.redemption_token,
    }


def _amount(minor: int, card: GiftCard) -> float:
    return float(from_minor(minor, card.currency))


def report_as_json(report: CardReport) -> dict[str, Any]:
    card = report.card
    transaction_ids = {t.id: t.transaction_id for t in report.transactions}
    return {
        "card": card_as_json(card),
        "owner": report.owner,
        "ledger": {
            "available": _amount(report.ledger_available, card),
            "held": _amount(report.ledger_held, card),
            "consistent": report.consistent,
        },
        "transactions": [
            {
                "id": t.transaction_id,
                "requestId": t.request_id,
                "operation": t.operation,
                "amount": _amount(t.amount_minor, card),
                "settled": _amount(t.settled_minor, card),
                "released": _amount(t.released_minor, card),
                "refunded": _amount(t.refunded_minor, card),
                "orderId": t.order_id,
                "description": t.description,
                "createdAt": t.created_at.isoformat(),
                "holdExpiresAt": t.hold_expires_at.isoformat() if t.hold_expires_at else None,
            }
            for t in report.transactions
        ],
        "entries": [
            {
                "kind": e.kind,
                "available": _amount(e.available_delta, card),
                "held": _amount(e.held_delta, card),
                "transactionId": transaction_ids.get(e.transaction_pk or uuid.UUID(int=0)),
                "note": e.note,
                "createdAt": e.created_at.isoformat(),
            }
            for e in report.entries
        ],
    }


def order_from(item: IssueCardItem) -> IssueOrder:
    return IssueOrder(
        amount=item.amount,
        currency=item.currency,
        profile_id=item.profile_id,
        restricted_to_owner=item.restricted_to_owner,
        caption=item.caption,
        relation_name=item.relation_name,
        expiring_date=item.expiring_date,
        multiple_redemptions=item.multiple_redemptions,
        multiple_credits=item.multiple_credits,
    )


def build_giftcards(
    database: Database, settings: Settings, cipher: FieldCipher
) -> tuple[GiftCardService, GiftCardLedger]:
    blind_index = BlindIndex.from_secret(settings.blind_index_secret())
    ledger = GiftCardLedger(database, settings, blind_index)
    return GiftCardService(database, settings, cipher, blind_index, ledger), ledger


__all__ = [
    "CardReport",
    "GiftCardService",
    "IssueOrder",
    "IssuedCard",
    "build_giftcards",
    "card_as_json",
    "issued_as_json",
    "order_from",
    "report_as_json",
]

"""Anti-fraud analyses: decide with the merchant's rules, keep the decision, answer VTEX from the
database, queue reviews for operators, and announce late decisions on the `hook` URL.

- `POST /transactions` is idempotent on the VTEX id: the analysis is unique per merchant and id;
  a repeat, or the loser of two racing repeats (its insert collides and its database transaction
  rolls back), answers the stored analysis.
- Velocity is counted in the database, under a lock on each subject counted (see
  `AntifraudRepository.lock_subjects`): concurrent orders with one card count one at a time.
- A decision that comes after the answer (an operator's, a review deadline's, a test-suite
  scenario's) is a conditional UPDATE plus an outbox row in the same database transaction: the
  hook is sent at least once, after commit, with retries (`connector.outbox`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from connector.antifraud.facts import SUBJECTS, Facts
from connector.antifraud.repository import UNDEFINED, AntifraudRepository
from connector.antifraud.rules import History, RuleSet, Tally, Verdict
from connector.antifraud.rulesets import ActiveRules, RuleBook, default_rules
from connector.db.engine import Database
from connector.db.tables import AntifraudAnalysis, Merchant, utcnow
from connector.errors import BadRequest, Conflict, NotFound
from connector.outbox.allowlist import callback_url_allowed
from connector.outbox.repository import OutboxRepository
from connector.security import BlindIndex, FieldCipher, generate_public_id
from connector.settings import Settings
from protocol.antifraud import AnalysisRequest, AnalysisResponse, PreAnalysisResponse
from protocol.money import InvalidAmount, from_minor

log = logging.getLogger(__name__)
T = TypeVar("T")

HOOK = "antifraud_hook"
DUE_BATCH = 100


@dataclass(frozen=True, slots=True)
class Scenario:
    """A VTEX test-suite case, chosen by the last character of the transaction id (A13)."""

    decision: str
    pending_reads: int  # status reads answered `undefined` before the decision shows
    hook: bool  # the decision is announced on the hook URL


TEST_SCENARIOS = {
    "1": Scenario("approved", 0, hook=False),
    "2": Scenario("denied", 0, hook=False),
    "3": Scenario("approved", 1, hook=False),
    "4": Scenario("denied", 1, hook=False),
    "5": Scenario("approved", 0, hook=True),
    "6": Scenario("denied", 0, hook=True),
}


def response_of(analysis: AntifraudAnalysis, *, as_post: bool = False) -> AnalysisResponse:
    """What VTEX reads. The answer to POST says `received` while the analysis is pending (and
    always in test-suite mode, as VTEX's suite expects); GET, PUT and the hook say `undefined`."""
    status = analysis.status
    if as_post and (analysis.is_test_suite or status == UNDEFINED):
        status = "received"
    return AnalysisResponse(
        id=analysis.transaction_id,
        tid=analysis.tid,
        status=status,
        score=float(analysis.score),
        fraud_risk_percentage=float(analysis.score),
        analysis_type=analysis.analysis_type,
        responses=dict(analysis.responses),
        code=analysis.code,
        message=analysis.message,
    )


class AntifraudService:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        cipher: FieldCipher,
        blind_index: BlindIndex,
        rulebook: RuleBook,
    ) -> None:
        self._db = database
        self._settings = settings
        self._cipher = cipher
        self._blind_index = blind_index
        self.rulebook = rulebook

    # ------------------------------------------------------------------------- VTEX's calls

    async def analyse(
        self, merchant: Merchant, request: AnalysisRequest, *, test_suite: bool
    ) -> AntifraudAnalysis:
        """`POST /transactions`: the stored analysis of this id, or a new one."""
        self._check_hook(request.hook)
        facts = self._facts(request)
        scenario = TEST_SCENARIOS.get(request.id[-1]) if test_suite else None
        rules = None if scenario else await self.rulebook.for_merchant(merchant.id)

        async def attempt() -> AntifraudAnalysis:
            async with self._db.writer() as session:
                repo = AntifraudRepository(session)
                existing = await repo.analysis(merchant.id, request.id)
                if existing is not None:
                    return existing
                now = utcnow()
                analysis = self._new_analysis(merchant, request, facts, test_suite, now)
                if scenario is not None:
                    self._script(analysis, scenario, request.id[-1], now)
                else:
                    assert rules is not None
                    verdict = await self._verdict(repo, merchant, facts, rules.rules, now)
                    self._apply(analysis, verdict, rules, now)
                await repo.add(analysis)
                return analysis

        return await self._once(attempt, lambda: self._stored(merchant, request.id))

    async def pre_analyse(
        self, merchant: Merchant, request: AnalysisRequest
    ) -> PreAnalysisResponse:
        """`POST /pre-analysis`: the rules' verdict on an order not yet authorized, nothing stored
        (its full analysis comes later and is the one velocity counts). Only `approved` or
        `denied` exist here; what would go to review is approved, as the full analysis follows."""
        facts = self._facts(request)
        rules = await self.rulebook.for_merchant(merchant.id)
        async with self._db.reader() as session:
            history = await self._history(AntifraudRepository(session), merchant, facts,
                                          rules.rules, utcnow())  # fmt: skip
        verdict = rules.rules.evaluate(facts, history)
        status = "denied" if verdict.decision == "denied" else "approved"
        code, message = self._explain(verdict, rules.rules)
        return PreAnalysisResponse(
            id=request.id,
            tid=generate_public_id(),
            status=status,
            score=float(verdict.score),
            responses=verdict.fired,
            code=code,
            message=message,
        )

    async def status(self, merchant: Merchant | None, transaction_id: str) -> AntifraudAnalysis:
        """`GET /transactions/{id}`, from the database. Without a merchant (no credentials) only
        test-suite analyses are found: VTEX's suite reads them so."""
        async with self._db.reader() as session:
            repo = AntifraudRepository(session)
            if merchant is None:
                analysis = await repo.test_suite_analysis(transaction_id)
            else:
                analysis = await repo.analysis(merchant.id, transaction_id)
        if analysis is None:
            raise NotFound(f"no analysis of transaction {transaction_id!r}",
                           code="transaction-not-found")  # fmt: skip
        if not self._decides_on_read(analysis):
            return analysis
        async with self._db.writer() as session:
            repo = AntifraudRepository(session)
            if not await repo.consume_pending_read(analysis.id):
                await repo.decide(analysis.id, analysis.default_decision or "denied",
                                  decided_by="test-suite", reason=None, now=utcnow())  # fmt: skip
            fresh = await repo.by_tid(analysis.tid)
            assert fresh is not None
            return fresh

    async def update(
        self, merchant: Merchant, transaction_id: str, request: AnalysisRequest, *, test_suite: bool
    ) -> AntifraudAnalysis:
        """`PUT /transactions/{id}`: new data for an analysis. A decision once taken stands; the
        order data, value and hook URL are replaced (a pending review is then decided, and
        announced, on the new data and URL). An unknown id is analysed as a POST would."""
        if request.id != transaction_id:
            raise BadRequest("the body's id must be the transaction id of the path",
                             code="id-mismatch")  # fmt: skip
        self._check_hook(request.hook)
        facts = self._facts(request)
        async with self._db.writer() as session:
            repo = AntifraudRepository(session)
            analysis = await repo.analysis(merchant.id, transaction_id)
            if analysis is not None:
                analysis.reference = request.reference or analysis.reference
                analysis.hook_url = request.hook or analysis.hook_url
                analysis.amount_minor, analysis.currency = facts.amount_minor, facts.currency
                analysis.order_data = self._encrypt(request)
                analysis.updated_at = utcnow()
                await session.flush()
                return analysis
        return await self.analyse(merchant, request, test_suite=test_suite)

    async def stop(self, merchant: Merchant, transaction_id: str) -> AntifraudAnalysis | None:
        """`DELETE /transactions/{id}`: VTEX cancelled the order. A pending analysis leaves the
        review queue and is never decided or announced; None for an unknown id."""
        async with self._db.writer() as session:
            repo = AntifraudRepository(session)
            analysis = await repo.analysis(merchant.id, transaction_id)
            if analysis is None:
                return None
            await repo.stop(analysis.id, utcnow())
            await repo.refresh(analysis)
            return analysis

    # ------------------------------------------------------------------------- operators

    async def review_queue(self, merchant: Merchant | None, limit: int) -> list[AntifraudAnalysis]:
        async with self._db.reader() as session:
            return await AntifraudRepository(session).review_queue(
                merchant.id if merchant else None, limit
            )

    async def by_tid(self, tid: str) -> AntifraudAnalysis:
        async with self._db.reader() as session:
            analysis = await AntifraudRepository(session).by_tid(tid)
        if analysis is None:
            raise NotFound(f"no analysis with tid {tid!r}", code="analysis-not-found")
        return analysis

    def order_data(self, analysis: AntifraudAnalysis) -> dict[str, Any] | None:
        """The order as VTEX sent it, decrypted, for a reviewer."""
        if analysis.order_data is None:
            return None
        data: dict[str, Any] = self._cipher.decrypt_json(analysis.order_data)
        return data

    async def decide_review(
        self, tid: str, decision: str, *, operator: str, reason: str
    ) -> AntifraudAnalysis:
        """An operator's decision on a queued analysis; the hook announces it. 409 if it was
        decided (or stopped) already."""
        async with self._db.writer() as session:
            repo = AntifraudRepository(session)
            analysis = await repo.by_tid(tid)
            if analysis is None:
                raise NotFound(f"no analysis with tid {tid!r}", code="analysis-not-found")
            now = utcnow()
            decided = await repo.decide(analysis.id, decision, decided_by=operator[:100],
                                        reason=reason[:500], now=now, manual_only=True)  # fmt: skip
            if not decided:
                raise Conflict(
                    f"analysis {tid} is not waiting for review (it is {analysis.status}"
                    f"{', stopped' if analysis.stopped_at else ''})",
                    code="not-in-review",
                )
            await repo.refresh(analysis)
            analysis.code, analysis.message = "manual-review", f"{decision} by {operator[:100]}"
            await self._announce(session, analysis, now)
            return analysis

    async def decide_due(self, now: datetime | None = None) -> int:
        """Decide every analysis past its deadline with its default decision (a review nobody
        took, a test-suite hook scenario), and announce it; how many were decided."""
        now = now or utcnow()
        decided = 0
        async with self._db.writer() as session:
            repo = AntifraudRepository(session)
            for analysis in await repo.due(now, DUE_BATCH):
                decision = analysis.default_decision or "denied"
                by = "test-suite" if analysis.is_test_suite else "review-deadline"
                if not await repo.decide(analysis.id, decision, decided_by=by,
                                         reason=None, now=now):  # fmt: skip
                    continue  # another worker, an operator or a DELETE got there first
                await repo.refresh(analysis)
                if not analysis.is_test_suite:
                    analysis.code = "review-deadline"
                    analysis.message = f"nobody reviewed it in time: {decision} by default"
                await self._announce(session, analysis, now)
                decided += 1
        if decided:
            log.info("%d anti-fraud analyses decided at their deadline", decided)
        return decided

    async def run(self, stop: asyncio.Event) -> None:
        """Background loop of `serve` and `worker`: deadlines and test-suite hook scenarios."""
        while not stop.is_set():
            try:
                while await self.decide_due() == DUE_BATCH:
                    pass
            except Exception:  # a database hiccup must not end the loop
                log.exception("deciding anti-fraud deadlines failed")
            try:
                await asyncio.wait_for(stop.wait(), self._settings.antifraud_poll_seconds)
            except TimeoutError:
                pass

    # ------------------------------------------------------------------------- internals

    def _facts(self, request: AnalysisRequest) -> Facts:
        try:
            return Facts.of(request, self._settings.antifraud_default_currency)
        except InvalidAmount as error:
            raise BadRequest(str(error), code="invalid-amount") from error

    def _check_hook(self, url: str | None) -> None:
        """The SSRF guard of payment callbacks, at request time: a hook URL off the allow-list is
        refused before anything is stored, rather than failing silently at the first decision."""
        settings = self._settings
        if url and not callback_url_allowed(
            url, settings.callback_allowed_hosts, settings.callback_allow_loopback
        ):
            log.warning("refused a hook URL off the allow-list: %s", url.split("?")[0])
            raise BadRequest(
                "hook must be https on an allowed host (CONNECTOR_CALLBACK_ALLOWED_HOSTS)",
                code="hook-url-not-allowed",
            )

    def _digests(self, facts: Facts) -> dict[str, bytes]:
        found = {}
        for kind in SUBJECTS:
            value = facts.subject(kind)
            if value is not None:
                found[kind] = self._blind_index.digest(f"antifraud-{kind}:{value}")
        return found

    async def _history(
        self,
        repo: AntifraudRepository,
        merchant: Merchant,
        facts: Facts,
        rules: RuleSet,
        now: datetime,
        *,
        lock: bool = False,
    ) -> History:
        """The tallies and earlier purchases the rules read, this order included."""
        digests = self._digests(facts)
        windows = [(kind, seconds) for kind, seconds in rules.windows() if kind in digests]
        identities = [kind for kind in rules.identities() if kind in digests]
        if lock:
            locked = {kind for kind, _ in windows} | set(identities)
            await repo.lock_subjects(merchant.id, [(kind, digests[kind]) for kind in locked], now)
        counted, returning = await repo.history(
            merchant.id,
            [(kind, digests[kind], s, now - timedelta(seconds=s)) for kind, s in windows],
            [(kind, digests[kind]) for kind in identities],
        )
        tallies = {
            (kind, seconds): Tally(count + 1, amount + facts.amount_minor)
            for (kind, seconds), (count, amount) in counted.items()
        }
        return History(tallies, frozenset(returning))

    async def _verdict(
        self,
        repo: AntifraudRepository,
        merchant: Merchant,
        facts: Facts,
        rules: RuleSet,
        now: datetime,
    ) -> Verdict:
        history = await self._history(repo, merchant, facts, rules, now, lock=True)
        return rules.evaluate(facts, history)

    def _new_analysis(
        self,
        merchant: Merchant,
        request: AnalysisRequest,
        facts: Facts,
        test_suite: bool,
        now: datetime,
    ) -> AntifraudAnalysis:
        digests = {} if test_suite else self._digests(facts)
        return AntifraudAnalysis(
            merchant_id=merchant.id,
            transaction_id=request.id,
            tid=generate_public_id(),
            reference=request.reference,
            status=UNDEFINED,
            analysis_type="automatic",
            score=0,
            responses={},
            amount_minor=facts.amount_minor,
            currency=facts.currency,
            hook_url=request.hook,
            is_test_suite=test_suite,
            pending_reads=0,
            card_key=digests.get("card"),
            email_key=digests.get("email"),
            document_key=digests.get("document"),
            ip_key=digests.get("ip"),
            device_key=digests.get("device"),
            order_data=self._encrypt(request),
            created_at=now,
            updated_at=now,
        )

    def _script(
        self, analysis: AntifraudAnalysis, scenario: Scenario, case: str, now: datetime
    ) -> None:
        """A test-suite case: decided at once (1, 2), on the second status read (3, 4), or by the
        deadline worker, which also sends the hook (5, 6)."""
        analysis.code, analysis.message = "test-suite", f"VTEX test-suite case {case}"
        analysis.score = 95 if scenario.decision == "denied" else 5
        analysis.responses = {"testSuiteCase": case}
        if scenario.pending_reads == 0 and not scenario.hook:
            analysis.status = scenario.decision
            analysis.decided_by, analysis.decided_at = "test-suite", now
            return
        analysis.default_decision = scenario.decision
        analysis.pending_reads = scenario.pending_reads
        if scenario.hook:
            delay = self._settings.antifraud_test_suite_hook_delay_seconds
            analysis.deadline = now + timedelta(seconds=delay)

    def _apply(
        self, analysis: AntifraudAnalysis, verdict: Verdict, rules: ActiveRules, now: datetime
    ) -> None:
        analysis.score = verdict.score
        analysis.responses = verdict.fired
        analysis.ruleset_version = rules.version
        analysis.code, analysis.message = self._explain(verdict, rules.rules)
        if verdict.decision == "review":
            analysis.analysis_type = "manual"
            analysis.deadline = now + timedelta(seconds=rules.rules.review.deadline)
            analysis.default_decision = rules.rules.review.on_deadline
            return
        analysis.status = verdict.decision
        analysis.decided_by, analysis.decided_at = "rules", now

    @staticmethod
    def _explain(verdict: Verdict, rules: RuleSet) -> tuple[str, str]:
        if verdict.allowlisted:
            return "allowlisted", "approved by an allowlist"
        limits = f"review from {rules.thresholds.review}, deny from {rules.thresholds.deny}"
        return verdict.decision, f"risk score {verdict.score} ({limits})"

    def _encrypt(self, request: AnalysisRequest) -> bytes:
        return self._cipher.encrypt_json(request.model_dump(mode="json", by_alias=True,
                                                            exclude_none=True))  # fmt: skip

    @staticmethod
    def _decides_on_read(analysis: AntifraudAnalysis) -> bool:
        """Test-suite cases 3 and 4: decided by reads, not by a deadline."""
        return (
            analysis.is_test_suite
            and analysis.status == UNDEFINED
            and analysis.stopped_at is None
            and analysis.deadline is None
            and analysis.default_decision is not None
        )

    async def _announce(
        self, session: AsyncSession, analysis: AntifraudAnalysis, now: datetime
    ) -> None:
        """Queue the hook (same database transaction as the decision)."""
        if not analysis.hook_url:
            return
        settings = self._settings
        await OutboxRepository(session).enqueue(
            kind=HOOK,
            analysis_pk=analysis.id,
            url=analysis.hook_url,
            payload=response_of(analysis).model_dump(mode="json", by_alias=True),
            available_at=now + timedelta(seconds=settings.callback_delay_seconds),
            deadline=now + timedelta(seconds=settings.callback_deadline_seconds),
        )

    async def _stored(self, merchant: Merchant, transaction_id: str) -> AntifraudAnalysis:
        async with self._db.reader() as session:
            analysis = await AntifraudRepository(session).analysis(merchant.id, transaction_id)
        assert analysis is not None, "the winner of the race has committed"
        return analysis

    async def _once(
        self, attempt: Callable[[], Awaitable[T]], replay: Callable[[], Awaitable[T]]
    ) -> T:
        try:
            return await attempt()
        except IntegrityError:
            log.info("a concurrent request for the same transaction won; answering its analysis")
            return await replay()


def money(analysis: AntifraudAnalysis) -> str:
    return f"{from_minor(analysis.amount_minor, analysis.currency)} {analysis.currency}"


def build_antifraud(
    database: Database, settings: Settings, cipher: FieldCipher
) -> AntifraudService:
    """The service with the deployment's default rules (InvalidRules if that file is bad)."""
    rulebook = RuleBook(
        database,
        default_rules(settings.antifraud_rules_file),
        settings.antifraud_rules_cache_seconds,
    )
    blind_index = BlindIndex.from_secret(settings.blind_index_secret())
    return AntifraudService(database, settings, cipher, blind_index, rulebook)

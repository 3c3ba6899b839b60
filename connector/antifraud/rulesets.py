"""Which rules a merchant runs: the last rule file loaded for it, or the deployment's default.

A load is stored as a new version in the database, so every process sees it without a restart:
this one at once, the others within `CONNECTOR_ANTIFRAUD_RULES_CACHE_SECONDS`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from connector.antifraud.repository import AntifraudRepository
from connector.antifraud.rules import RuleSet, parse_rules
from connector.db.engine import Database
from connector.db.tables import utcnow
from connector.errors import Conflict

SHIPPED_DEFAULT = Path(__file__).with_name("default_rules.yaml")


@dataclass(frozen=True, slots=True)
class ActiveRules:
    rules: RuleSet
    source: str
    version: int | None  # None: the deployment's default, no file loaded for this merchant
    loaded_by: str | None = None


def default_rules(path: Path | None = None) -> ActiveRules:
    """The rule set of merchants without their own (raises InvalidRules if the file is bad)."""
    source = (path or SHIPPED_DEFAULT).read_text()
    return ActiveRules(parse_rules(source), source, None)


class RuleBook:
    _CACHE_LIMIT = 10_000

    def __init__(self, database: Database, default: ActiveRules, cache_seconds: float) -> None:
        self._db = database
        self._default = default
        self._cache_seconds = cache_seconds
        self._cache: dict[uuid.UUID, tuple[float, ActiveRules]] = {}

    @property
    def default(self) -> ActiveRules:
        return self._default

    async def for_merchant(self, merchant_id: uuid.UUID) -> ActiveRules:
        now = time.monotonic()
        cached = self._cache.get(merchant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._db.reader() as session:
            stored = await AntifraudRepository(session).latest_ruleset(merchant_id)
        if stored is None:
            active = self._default
        else:
            # Validated when loaded; parsing again here only fails if the code's schema moved on.
            active = ActiveRules(
                parse_rules(stored.source), stored.source, stored.version, stored.loaded_by
            )
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[merchant_id] = (now + self._cache_seconds, active)
        return active

    async def load(self, merchant_id: uuid.UUID, source: str, loaded_by: str) -> ActiveRules:
        """Validate `source` (InvalidRules says why not) and make it the merchant's rules."""
        rules = parse_rules(source)
        try:
            async with self._db.writer() as session:
                stored = await AntifraudRepository(session).add_ruleset(
                    merchant_id, source, loaded_by[:100], utcnow()
                )
        except IntegrityError as error:
            raise Conflict(
                "another rule file was loaded for this merchant at the same moment; load again",
                code="concurrent-rules-load",
            ) from error
        active = ActiveRules(rules, source, stored.version, stored.loaded_by)
        self._cache.pop(merchant_id, None)
        return active

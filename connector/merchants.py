"""Merchants and their VTEX credentials (app key and app token; the token is kept only hashed)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from connector import security
from connector.db.engine import Database
from connector.db.tables import Merchant, utcnow
from connector.errors import BadRequest, NotFound, Unauthorized


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    name: str
    app_key: str
    app_token: str  # shown once; never stored

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "appKey": self.app_key, "appToken": self.app_token}


class MerchantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def by_app_key(self, app_key: str) -> Merchant | None:
        return await self._session.scalar(select(Merchant).where(Merchant.app_key == app_key))

    async def by_name(self, name: str) -> Merchant | None:
        return await self._session.scalar(select(Merchant).where(Merchant.name == name))

    async def all(self) -> list[Merchant]:
        return list(await self._session.scalars(select(Merchant).order_by(Merchant.name)))

    async def add(self, merchant: Merchant) -> None:
        self._session.add(merchant)
        await self._session.flush()

    async def set_token(self, name: str, salt: bytes, digest: bytes) -> bool:
        result = await self._session.execute(
            update(Merchant)
            .where(Merchant.name == name)
            .values(token_salt=salt, token_digest=digest, token_rotated_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class MerchantService:
    """Merchants and credential checks.

    Credential look-ups are cached per process for `cache_seconds` (answers "no such key" too,
    so a flood of made-up keys does not reach the database). A token rotated or a merchant added
    in another process is seen here within that time; in this process, at once.
    """

    _CACHE_LIMIT = 10_000

    def __init__(self, database: Database, cache_seconds: float = 0.0) -> None:
        self._db = database
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Merchant | None]] = {}

    async def add(
        self, name: str, app_key: str | None = None, app_token: str | None = None
    ) -> IssuedCredentials:
        if not name.strip():
            raise BadRequest("merchant name must not be empty")
        app_key = app_key or security.generate_app_key()
        app_token = app_token or security.generate_app_token()
        salt, digest = security.hash_token(app_token)
        try:
            async with self._db.writer() as session:
                await MerchantRepository(session).add(
                    Merchant(name=name, app_key=app_key, token_salt=salt, token_digest=digest)
                )
            self._cache.pop(app_key, None)
        except IntegrityError as error:
            raise BadRequest(f"a merchant named {name!r} or with that app key exists") from error
        return IssuedCredentials(name, app_key, app_token)

    async def list(self) -> list[Merchant]:
        async with self._db.reader() as session:
            return await MerchantRepository(session).all()

    async def rotate_token(self, name: str) -> IssuedCredentials:
        app_token = security.generate_app_token()
        salt, digest = security.hash_token(app_token)
        async with self._db.writer() as session:
            repository = MerchantRepository(session)
            if not await repository.set_token(name, salt, digest):
                raise NotFound(f"no merchant named {name!r}")
            merchant = await repository.by_name(name)
            assert merchant is not None
        self._cache.pop(merchant.app_key, None)
        return IssuedCredentials(name, merchant.app_key, app_token)

    async def authenticate(self, app_key: str, app_token: str) -> Merchant:
        """The merchant these credentials belong to, or Unauthorized (same answer, same cost)."""
        merchant = await self._by_app_key(app_key) if app_key else None
        if merchant is None:
            security.token_matches(app_token, security.DUMMY_SALT, security.DUMMY_DIGEST)
            raise Unauthorized("invalid app key or app token")
        if not security.token_matches(app_token, merchant.token_salt, merchant.token_digest):
            raise Unauthorized("invalid app key or app token")
        return merchant

    async def _by_app_key(self, app_key: str) -> Merchant | None:
        now = time.monotonic()
        cached = self._cache.get(app_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._db.reader() as session:
            merchant = await MerchantRepository(session).by_app_key(app_key)
        if self._cache_seconds > 0:
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[app_key] = (now + self._cache_seconds, merchant)
        return merchant

    async def by_name(self, name: str) -> Merchant | None:
        async with self._db.reader() as session:
            return await MerchantRepository(session).by_name(name)


__all__ = ["IssuedCredentials", "MerchantRepository", "MerchantService"]

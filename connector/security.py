"""Credentials, encryption at rest and masking of card data."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from pydantic import SecretStr

# ----------------------------------------------------------------------------- merchant tokens


def generate_app_key() -> str:
    return "vtexappkey-" + secrets.token_hex(12)


def generate_app_token() -> str:
    # 256 bits of entropy: a salted SHA-256 is then as good as a slow hash, and fast per request.
    return secrets.token_urlsafe(32)


def hash_token(token: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
    """(salt, digest). Only these are stored; the token is shown once, when issued."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    return salt, hashlib.sha256(salt + token.encode()).digest()


def token_matches(token: str, salt: bytes, digest: bytes) -> bool:
    """Constant-time comparison of a presented token with a stored digest."""
    return hmac.compare_digest(hash_token(token, salt)[1], digest)


# A digest that never matches, compared when the app key is unknown so that an unknown key and a
# wrong token take the same time.
DUMMY_SALT, DUMMY_DIGEST = b"\0" * 16, hashlib.sha256(b"no-such-merchant").digest()


# ----------------------------------------------------------------------------- encryption


class MissingEncryptionKey(RuntimeError):
    pass


class FieldCipher:
    """Fernet with rotation: the first key encrypts, every key decrypts."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        if not keys:
            raise MissingEncryptionKey(
                "CONNECTOR_ENCRYPTION_KEYS is empty: generate one with `connector keys generate`"
            )
        self._fernet = MultiFernet([Fernet(key.get_secret_value().encode()) for key in keys])

    def encrypt_json(self, value: Any) -> bytes:
        return self._fernet.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def decrypt_json(self, token: bytes) -> Any:
        return json.loads(self._fernet.decrypt(token))

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the primary key (keeps the original timestamp)."""
        return self._fernet.rotate(token)


def generate_encryption_key() -> str:
    return Fernet.generate_key().decode()


# ----------------------------------------------------------------------------- masking

# 13 to 19 digits, optionally grouped by single spaces or dashes: anything shaped like a PAN.
_PAN = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
_CSC = re.compile(r'("(?:csc|cvv|cvc|securityCode)"\s*:\s*)"[^"]*"', re.IGNORECASE)
# VTEX Secure Proxy tokens (`#vtex#token#d799bae#number#`): they stand for card data.
_PROXY_TOKEN = re.compile(r"#vtex#[^\s\"']*#")


def _mask_pan(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return f"{digits[:6]}******{digits[-4:]}"


def mask_card_data(text: str) -> str:
    """Keeps BIN and last four of anything that looks like a card number; hides CVVs and
    Secure Proxy tokens."""
    text = _PAN.sub(_mask_pan, text)
    text = _PROXY_TOKEN.sub("#vtex#***#", text)
    return _CSC.sub(r'\1"***"', text)

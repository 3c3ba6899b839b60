from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from connector.security import (
    FieldCipher,
    MissingEncryptionKey,
    hash_token,
    mask_card_data,
    token_matches,
)


def test_token_hash_matches_only_the_token():
    salt, digest = hash_token("s3cret")
    assert token_matches("s3cret", salt, digest)
    assert not token_matches("s3cret ", salt, digest)
    assert not token_matches("", salt, digest)
    assert hash_token("s3cret")[1] != digest  # a fresh salt every time


def test_rotation_keeps_old_ciphertexts_readable_and_rewrites_them():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = FieldCipher([SecretStr(old)])
    token = before.encrypt_json({"email": "a@b.c"})
    after = FieldCipher([SecretStr(new), SecretStr(old)])
    assert after.decrypt_json(token) == {"email": "a@b.c"}
    rotated = after.rotate(token)
    assert FieldCipher([SecretStr(new)]).decrypt_json(rotated) == {"email": "a@b.c"}
    with pytest.raises(InvalidToken):
        FieldCipher([SecretStr(old)]).decrypt_json(rotated)


def test_no_key_no_start():
    with pytest.raises(MissingEncryptionKey):
        FieldCipher([])


def test_secure_proxy_tokens_are_masked_in_log_text():
    text = 'card {"numberToken": "#vtex#token#d799bae#number#", "cscToken": "#vtex#token#d7#csc#"}'
    masked = mask_card_data(text)
    assert "d799bae" not in masked and "#vtex#token#d7#csc#" not in masked
    assert masked.count("#vtex#***#") == 2

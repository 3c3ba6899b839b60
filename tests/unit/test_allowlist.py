from __future__ import annotations

import pytest

from connector.outbox.allowlist import callback_url_allowed

VTEX = ["*.vtexpayments.com.br", "api.example.com"]


@pytest.mark.parametrize(
    ("url", "loopback", "allowed"),
    [
        ("https://gatewayqa.vtexpayments.com.br/api/pvt/callback?X-VTEX-signature=x", False, True),
        ("https://api.example.com/x", False, True),
        ("https://vtexpayments.com.br/x", False, False),  # "*." needs a subdomain
        ("https://evilvtexpayments.com.br/x", False, False),
        ("https://gatewayqa.vtexpayments.com.br.evil.org/x", False, False),
        ("http://gatewayqa.vtexpayments.com.br/x", False, False),  # not https
        ("https://user:pw@api.example.com/x", False, False),
        ("https://10.0.0.5/x", False, False),
        ("http://127.0.0.1:9000/cb", False, False),
        ("http://127.0.0.1:9000/cb", True, True),
        ("http://localhost:9000/cb", True, True),
        ("http://[::1]:9000/cb", True, True),
        ("https://api.example.com:99999/x", False, False),
        ("not a url", False, False),
        ("", False, False),
    ],
)
def test_callback_url_allowed(url: str, loopback: bool, allowed: bool):
    assert callback_url_allowed(url, VTEX, loopback) is allowed

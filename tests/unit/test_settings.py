from __future__ import annotations

import pytest

from connector.settings import Settings


def test_lists_come_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CONNECTOR_PAYMENT_METHODS", "Visa, Pix")
    monkeypatch.setenv("CONNECTOR_CALLBACK_ALLOWED_HOSTS", "*.vtexpayments.com.br,example.com")
    monkeypatch.setenv("CONNECTOR_REDIRECT_PAYMENT_METHODS", "RedirectPay")
    monkeypatch.setenv("CONNECTOR_PAYMENT_APP_METHODS", "CustomPay,OtherPay")
    monkeypatch.setenv("CONNECTOR_ENCRYPTION_KEYS", "a,b")
    monkeypatch.setenv("CONNECTOR_VTEX_APP_KEY", "vtexappkey-partner")
    monkeypatch.setenv("CONNECTOR_VTEX_APP_TOKEN", "partner-token")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.payment_methods == ["Visa", "Pix"]
    assert settings.callback_allowed_hosts == ["*.vtexpayments.com.br", "example.com"]
    assert settings.redirect_payment_methods == ["RedirectPay"]
    assert settings.payment_app_methods == ["CustomPay", "OtherPay"]
    assert [key.get_secret_value() for key in settings.encryption_keys] == ["a", "b"]
    assert settings.vtex_app_key == "vtexappkey-partner"
    assert settings.vtex_app_token is not None
    assert settings.vtex_app_token.get_secret_value() == "partner-token"


@pytest.mark.parametrize(
    "values",
    [
        {"pix_expiry_seconds": 300},
        {"delay_to_cancel": 60},
        {"acquirer_timeout_seconds": 5, "attempt_stale_seconds": 4},
        # VTEX's Secure Proxy gives the acquirer 15 s, its Test Suite 5 s in all.
        {"acquirer_timeout_seconds": 16},
        {"test_suite_acquirer_timeout_seconds": 5},
        {"test_suite_acquirer_timeout_seconds": 4, "attempt_stale_seconds": 3},
        {"acquirer": "http"},
        {"acquirer": "http", "acquirer_url": "ftp://core.example", "acquirer_api_key": "k"},
        {"acquirer": "http", "acquirer_url": "https://core.example"},
    ],
)
def test_values_outside_vtex_bounds_are_refused(values: dict[str, object]):
    with pytest.raises(ValueError):
        Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_the_budget_depends_on_the_traffic():
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.acquirer_budget(test_suite=True) == 4.0
    assert settings.acquirer_budget(test_suite=False) == 15.0
    assert settings.attempt_stale_seconds > 15.0


def test_the_http_acquirer_needs_its_url_and_key(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CONNECTOR_ACQUIRER", "http")
    monkeypatch.setenv("CONNECTOR_ACQUIRER_URL", "https://core.example/acquirer/v1")
    monkeypatch.setenv("CONNECTOR_ACQUIRER_API_KEY", "k")
    hosts = "*.vtexpayments.com.br, proxy.example"
    monkeypatch.setenv("CONNECTOR_SECURE_PROXY_ALLOWED_HOSTS", hosts)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.acquirer == "http"
    assert settings.secure_proxy_allowed_hosts == ["*.vtexpayments.com.br", "proxy.example"]

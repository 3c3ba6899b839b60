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
    ],
)
def test_values_outside_vtex_bounds_are_refused(values: dict[str, object]):
    with pytest.raises(ValueError):
        Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]

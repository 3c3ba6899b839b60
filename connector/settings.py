"""The one settings object. Read once at start-up (environment, then `.env`) and passed down."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# VTEX's bounds for the delays of a create-payment response (seconds).
MAX_AUTO_SETTLE_DELAY = 604_800  # 7 days
MIN_DELAY_TO_CANCEL = 600  # 10 minutes
MAX_DELAY_TO_CANCEL = 2_592_000  # 30 days


class SplitMode(StrEnum):
    ON_AUTHORIZE = "onAuthorize"
    ON_CAPTURE = "onCapture"
    DISABLED = "disabled"


class ManifestCustomField(BaseModel):
    """A field the merchant fills in VTEX's admin; its value comes back in `merchantSettings`."""

    name: str
    type: Literal["text", "password", "select"] = "text"
    options: list[dict[str, str]] | None = None


class Settings(BaseSettings):
    """Every knob of a deployment. Environment variables carry the `CONNECTOR_` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="CONNECTOR_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite+aiosqlite:///./connector.db"
    # Fernet keys, comma-separated, newest first: the first encrypts, all decrypt (rotation).
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    # What the manifest advertises.
    payment_methods: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["Visa", "Mastercard", "American Express", "Elo", "Diners"]
    )
    split_mode: SplitMode = SplitMode.DISABLED
    # JSON, e.g. [{"name": "Merchant id", "type": "text"}]
    custom_fields: list[ManifestCustomField] = Field(default_factory=list)
    auto_settle_delay_min_hours: int = Field(default=0, ge=0)
    auto_settle_delay_max_hours: int = Field(default=168, ge=0, le=720)  # VTEX example: 720

    # Delays returned on every authorization (seconds), clamped to VTEX's bounds by validation.
    delay_to_auto_settle: int = Field(default=21_600, ge=0, le=MAX_AUTO_SETTLE_DELAY)
    delay_to_auto_settle_after_antifraud: int = Field(default=1_800, ge=0, le=MAX_AUTO_SETTLE_DELAY)
    delay_to_cancel: int = Field(default=21_600, ge=MIN_DELAY_TO_CANCEL, le=MAX_DELAY_TO_CANCEL)

    # Requests carrying X-VTEX-API-Is-TestSuite: true run VTEX's Test Suite scenarios.
    test_suite_enabled: bool = True
    # Merchant used when the Test Suite sends empty credentials; unset means such calls get 401.
    test_suite_merchant: str | None = None

    # ----- purchase flows beyond cards (BankInvoice and Pix are recognised by their VTEX names)
    # Where shoppers reach this deployment (the sandbox's payment page, redirect returns).
    public_base_url: str = "http://127.0.0.1:8000"
    redirect_payment_methods: Annotated[list[str], NoDecode] = Field(default_factory=list)
    payment_app_methods: Annotated[list[str], NoDecode] = Field(default_factory=list)
    payment_app_name: str = "vtex.payment-app"
    pix_key: str = "sandbox@example.com"
    pix_expiry_seconds: int = Field(default=1_800, ge=900, le=3_600)  # VTEX: 15 to 60 minutes
    bank_invoice_delay_to_cancel: int = Field(
        default=259_200, ge=MIN_DELAY_TO_CANCEL, le=MAX_DELAY_TO_CANCEL
    )
    redirect_delay_to_cancel: int = Field(
        default=3_600, ge=MIN_DELAY_TO_CANCEL, le=MAX_DELAY_TO_CANCEL
    )

    # ----- the acquirer: the built-in sandbox, or a provider's core behind the acquirer API
    acquirer: Literal["sandbox", "http"] = "sandbox"
    # Base URL of the acquirer API (protocol/acquirer-api.yaml) and the key it expects.
    acquirer_url: str | None = None
    acquirer_api_key: SecretStr | None = None
    # The time budget of one request to the connector for everything the acquirer does in it
    # (VTEX waits 20 s in production; its Secure Proxy gives the acquirer 15 s). Past it, an
    # authorization answers `undefined` and is reconciled in the background.
    acquirer_timeout_seconds: float = Field(default=15.0, gt=0, le=15)
    # The same budget for VTEX Test Suite traffic, which fails a case after 5 s.
    test_suite_acquirer_timeout_seconds: float = Field(default=4.0, gt=0, le=4.5)
    # Hosts a secureProxyUrl may point to. The connector sends the acquirer's API key there, so
    # an unchecked URL would hand it to whoever wrote the request.
    secure_proxy_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*.vtexpayments.com.br"]
    )
    # Loopback proxy URLs (http://127.0.0.1:...) for tests and `make demo` only.
    secure_proxy_allow_loopback: bool = False
    # An authorization or operation attempt older than this lost its process or its answer, and
    # a retry of the same request may take it over (after asking the acquirer what happened).
    # Longer than the budget, so that an attempt still waiting for its answer is never doubled.
    attempt_stale_seconds: float = Field(default=30.0, gt=0)
    sandbox_latency_ms: int = Field(default=0, ge=0)
    # Probability (0..1) that a sandbox acquirer call fails as "unavailable"; for demos only.
    sandbox_failure_rate: float = Field(default=0.0, ge=0, le=1)

    # How long a duplicate POST /payments waits for the in-flight original to finish.
    duplicate_wait_seconds: float = Field(default=3.0, ge=0, le=4.5)
    # How long a process may trust a credential look-up (token rotations elsewhere take this long).
    credentials_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    log_level: str = "INFO"
    # One JSON object per line (for a log pipeline), or plain text (for a terminal).
    log_format: Literal["json", "text"] = "json"

    # ----- asynchronous outcomes and callbacks
    # Hosts a callbackUrl may point to: names or "*.domain" patterns (VTEX's domains by default).
    callback_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "*.vtexpayments.com.br",
            "*.vtexcommercestable.com.br",
            "*.myvtex.com",
            "*.vtex.com",
            "*.vtex.com.br",
        ]
    )
    # Loopback callback URLs (http://127.0.0.1:...) for tests and `make run` only.
    callback_allow_loopback: bool = False
    # The provider's own VTEX credentials (License Manager), sent on every callback.
    vtex_app_key: str | None = None
    vtex_app_token: SecretStr | None = None
    # A callback is never sent sooner than this after its state change (VTEX's gateway must have
    # finished the request that produced `undefined`).
    callback_delay_seconds: float = Field(default=1.0, ge=0)
    callback_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    callback_deadline_seconds: int = Field(default=86_400, gt=0)
    callback_backoff_base_seconds: float = Field(default=1.0, gt=0)
    callback_backoff_max_seconds: float = Field(default=300.0, gt=0)
    outbox_lease_seconds: float = Field(default=30.0, gt=0)
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    # Run the callback dispatcher and the pending-payment reconciler inside `serve`.
    run_background_workers: bool = True
    reconcile_interval_seconds: float = Field(default=1.0, gt=0)
    # A pending payment is checked again after a tenth of its age, at least every
    # `reconcile_interval_seconds` and at most this far apart.
    reconcile_max_interval_seconds: float = Field(default=300.0, gt=0)
    sandbox_async_decision_seconds: float = Field(default=3.0, ge=0)
    # Shared secret for the acquirer-side outcome webhook (HMAC-SHA256); unset disables the route.
    webhook_secret: SecretStr | None = None
    webhook_tolerance_seconds: int = Field(default=300, gt=0)

    # ----- gift cards (Gift Card Provider Protocol, under /giftcard)
    # The `provider` field of cards: the id the provider is registered under in the Gift Card Hub.
    giftcard_provider_name: str = Field(default="connector", min_length=1, max_length=100)
    # Currency of a card created without `currencyCode`.
    giftcard_default_currency: str = Field(default="BRL", pattern=r"^[A-Z]{3}$")
    # A Debit not settled within this time has its remaining hold released (Lightrail's default
    # is a week; VTEX settles when the order is invoiced).
    giftcard_hold_seconds: int = Field(default=604_800, gt=0)
    giftcard_expiry_poll_seconds: float = Field(default=30.0, gt=0)
    # Largest page `_search` and the transaction list return (`REST-Range: resources=0-49`).
    giftcard_max_page: int = Field(default=100, ge=1, le=1000)
    # Key of the blind index that finds a card by its owner's email, document or id without
    # storing them in the clear. Unset: derived from the first encryption key (set it explicitly
    # before you ever rotate encryption keys, or owners' cards stop being found by `_search`).
    blind_index_key: SecretStr | None = None

    # ----- anti-fraud (Anti-fraud Provider Protocol, under /antifraud)
    # What the anti-fraud manifest advertises (reference, A10).
    antifraud_cardholder_document: Literal["required", "optional", "unused"] = "optional"
    antifraud_allow_on_gift_card: bool = True
    # JSON, e.g. [{"name": "Policy", "type": "select", "options": [...]}]
    antifraud_custom_fields: list[ManifestCustomField] = Field(default_factory=list)
    # The rule file of merchants without their own; unset: the shipped default
    # (connector/antifraud/default_rules.yaml).
    antifraud_rules_file: Path | None = None
    # How long a process trusts its copy of a merchant's rules (a load elsewhere takes this long).
    antifraud_rules_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # Currency of amounts when a payment names none.
    antifraud_default_currency: str = Field(default="BRL", pattern=r"^[A-Z]{3}$")
    # How often review deadlines and test-suite hook scenarios are looked for.
    antifraud_poll_seconds: float = Field(default=1.0, gt=0)
    # Test-suite ids ending in 5 or 6 are decided, and the hook sent, this long after the POST
    # (VTEX waits 10 s for the hook).
    antifraud_test_suite_hook_delay_seconds: float = Field(default=2.0, ge=0, le=8)

    # ----- operators
    # Bearer token of the admin API (/admin); unset disables it (every call answers 401).
    admin_token: SecretStr | None = None
    # Bearer token GET /metrics requires; unset, it is open (scraped from inside the cluster).
    metrics_token: SecretStr | None = None

    @field_validator(
        "encryption_keys",
        "payment_methods",
        "callback_allowed_hosts",
        "redirect_payment_methods",
        "payment_app_methods",
        "secure_proxy_allowed_hosts",
        mode="before",
    )
    @classmethod
    def _split_comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_ranges(self) -> Settings:
        if self.auto_settle_delay_min_hours > self.auto_settle_delay_max_hours:
            raise ValueError("auto_settle_delay_min_hours exceeds auto_settle_delay_max_hours")
        if self.attempt_stale_seconds <= max(
            self.acquirer_timeout_seconds, self.test_suite_acquirer_timeout_seconds
        ):
            raise ValueError("attempt_stale_seconds must exceed the acquirer time budgets")
        if self.acquirer == "http":
            if not self.acquirer_url or not self.acquirer_url.startswith(("https://", "http://")):
                raise ValueError("CONNECTOR_ACQUIRER_URL must be an http(s) URL for acquirer=http")
            if self.acquirer_api_key is None:
                raise ValueError("CONNECTOR_ACQUIRER_API_KEY is required for acquirer=http")
        if not self.payment_methods:
            raise ValueError("payment_methods must name at least one method")
        return self

    def acquirer_budget(self, test_suite: bool) -> float:
        if test_suite:
            return self.test_suite_acquirer_timeout_seconds
        return self.acquirer_timeout_seconds

    def blind_index_secret(self) -> SecretStr:
        if self.blind_index_key is not None:
            return self.blind_index_key
        if not self.encryption_keys:
            raise ValueError("set CONNECTOR_BLIND_INDEX_KEY or CONNECTOR_ENCRYPTION_KEYS")
        return self.encryption_keys[0]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

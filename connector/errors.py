"""One exception tree, rendered as HTTP in exactly one place (`connector.app`).

ConnectorError                 code, http_status, safe message
├── BadRequest                 400  malformed JSON, missing or invalid fields
│   └── PayloadTooLarge        413  body over the configured limit
├── Unauthorized               401  missing or wrong credentials
│   └── Forbidden              403  wrong credentials where a protocol tells them from missing
├── NotFound                   404  unknown payment, card or transaction (or another merchant's)
├── Conflict                   409  a requestId reused for a different request
├── Refused                    422  a well-formed request the ledger refuses (balance, state)
├── InvalidTransition          500  a state change the state machine forbids: a bug
└── AcquirerError              the acquirer could not give an answer
    ├── AcquirerUnavailable    500  transient: VTEX retries the same request
    └── AcquirerTimeout        500  no answer within the time budget
"""

from __future__ import annotations


class ConnectorError(Exception):
    http_status = 500
    code = "internal-error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, http_status={self.http_status}, "
            f"message={self.message!r})"
        )

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class BadRequest(ConnectorError):
    http_status = 400
    code = "bad-request"


class PayloadTooLarge(BadRequest):
    http_status = 413
    code = "payload-too-large"


class Unauthorized(ConnectorError):
    http_status = 401
    code = "unauthorized"


class Forbidden(Unauthorized):
    http_status = 403
    code = "forbidden"


class NotFound(ConnectorError):
    http_status = 404
    code = "not-found"


class Conflict(ConnectorError):
    http_status = 409
    code = "conflict"


class Refused(ConnectorError):
    http_status = 422
    code = "refused"


class InvalidTransition(ConnectorError):
    http_status = 500
    code = "invalid-transition"


class AcquirerError(ConnectorError):
    http_status = 500
    code = "acquirer-error"

    def __init__(self, message: str, *, acquirer: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.acquirer = acquirer


class AcquirerUnavailable(AcquirerError):
    code = "acquirer-unavailable"


class AcquirerTimeout(AcquirerError):
    code = "acquirer-timeout"

"""The links the stateful phase did not follow, followed once."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from homologation.conformance.checks import CUSTOM_CHECKS
from homologation.conformance.collect import Collector, DocumentedLink
from homologation.conformance.config import REQUIRED_LINKS, TEST_SUITE_HEADER
from homologation.conformance.fixtures import payment_body
from homologation.conformance.state import RunState, exchange_of_httpx
from homologation.report import Check, Exchange, Outcome


class WalkFailed(Exception):
    pass


class LinkWalker:
    """Follows each of `REQUIRED_LINKS` the stateful phase did not follow to a 2xx (its walk is
    random): a realistic request to the link's source, then the target with the parameters the
    link takes from that answer. Every answer goes through the checks of the phases."""

    def __init__(self, state: RunState, collector: Collector) -> None:
        self.state = state
        self.collector = collector
        self.base = state.options.base_url.rstrip("/") + state.group.mount
        self.checks: list[Callable[..., bool | None]] = [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            response_headers_conformance,
            *CUSTOM_CHECKS,
        ]

    def walk(self) -> None:
        followed = {
            (link.source, link.target)
            for link in self.collector.links.values()
            if any(200 <= status < 300 for status in link.statuses)
        }
        for source, target in REQUIRED_LINKS.get(self.state.group.name, ()):
            if (source, target) in followed:
                continue
            link = next(
                (
                    item
                    for item in self.collector.documented_links
                    if (item.source, item.target) == (source, target)
                ),
                None,
            )
            if link is None:
                continue
            check = Check(f"{source} -> {target} (link {link.name})", Outcome.PASSED)
            try:
                detail = self._follow(link, check.exchanges)
            except WalkFailed as error:
                check.outcome, detail = Outcome.FAILED, str(error)
            except httpx.HTTPError as error:
                check.outcome, detail = Outcome.FAILED, f"{type(error).__name__}: {error}"
            check.detail = f"not followed to a 2xx by the stateful phase; followed once: {detail}"
            self.collector.walked.append((link, check))

    # -- the requests

    def _headers(self) -> dict[str, str]:
        options, group = self.state.options, self.state.group
        if group.name == "payments":
            return {
                "X-VTEX-API-AppKey": options.app_key,
                "X-VTEX-API-AppToken": options.app_token,
                TEST_SUITE_HEADER: "true",
            }
        return {
            "X-PROVIDER-API-AppKey": options.app_key,
            "X-PROVIDER-API-AppToken": options.app_token,
        }

    def send(
        self,
        operation_id: str,
        parameters: Mapping[str, str],
        body: Any,
        exchanges: list[Exchange],
    ) -> httpx.Response:
        """One request, checked; a non-2xx answer or a failed check ends the walk."""
        operation = self.collector.operations[operation_id]
        path = operation.path
        for name, value in parameters.items():
            path = path.replace("{" + name + "}", str(value))
        started = time.perf_counter()
        response = self.state.http.request(
            operation.method.upper(),
            self.base + path,
            headers=self._headers(),
            json=body,
        )
        exchange = exchange_of_httpx(response, time.perf_counter() - started)
        exchanges.append(exchange)
        case = operation.Case(
            path_parameters=dict(parameters) or None,
            body=body,
            media_type="application/json" if body is not None else None,
            headers=self._headers(),
        )
        try:
            case.validate_response(response, checks=self.checks)
        except (AssertionError, BaseExceptionGroup) as error:
            raise WalkFailed(f"{exchange.summary}: {error}") from error
        if not 200 <= response.status_code < 300:
            raise WalkFailed(f"{exchange.summary}: {response.text[:500]}")
        return response

    def _source(
        self, link: DocumentedLink, exchanges: list[Exchange]
    ) -> tuple[dict[str, str], Any, httpx.Response]:
        """A realistic request to the link's source (and what it needs first)."""
        state, fixtures = self.state, self.state.fixtures
        fresh = state.derive("walk", link.source, link.target)
        if link.source == "createPayment":
            body = payment_body(state.mint_payment_id(fresh), 100.0)
            return {}, body, self.send("createPayment", {}, body, exchanges)
        if link.source == "settlePayment":
            payment_id = state.mint_payment_id(fresh)
            self.send("createPayment", {}, payment_body(payment_id, 100.0), exchanges)
            parameters = {"paymentId": payment_id}
            body = {"value": 40.0, "requestId": state.derive(fresh, "settle")}
            return parameters, body, self.send("settlePayment", parameters, body, exchanges)
        if link.source in ("createGiftCardTransaction", "settleGiftCardTransaction"):
            if not fixtures.card_id:
                raise WalkFailed("no card to make a transaction on (see the fixtures)")
            parameters = {"giftCardId": fixtures.card_id}
            debit = {
                "operation": "Debit",
                "value": 10,
                "requestId": state.derive(fresh, "debit"),
                "redemptionToken": fixtures.card_token,
                "redemptionCode": fixtures.card_code,
                "description": "homologation",
            }
            answer = self.send("createGiftCardTransaction", parameters, debit, exchanges)
            if link.source == "createGiftCardTransaction":
                return parameters, debit, answer
            parameters = {**parameters, "transactionId": str(answer.json()["id"])}
            body = {"value": 4, "requestId": state.derive(fresh, "settle")}
            return parameters, body, self.send(link.source, parameters, body, exchanges)
        if link.source == "antifraudSendTransaction":
            body = {"id": fresh, "value": 100, "reference": "homologation"}
            return {}, body, self.send(link.source, {}, body, exchanges)
        raise WalkFailed(f"no realistic request for {link.source}")

    def _target_body(self, link: DocumentedLink, source_body: Any, fresh: str) -> Any:
        if link.request_body == "$request.body":
            return source_body
        return {
            "settlePayment": {"value": 10.0, "requestId": fresh},
            "refundPayment": {"value": 5.0, "requestId": fresh},
            "cancelPayment": {"requestId": fresh},
            "settleGiftCardTransaction": {"value": 1, "requestId": fresh},
            "cancelGiftCardTransaction": {"value": 1, "requestId": fresh},
        }.get(link.target)

    def _follow(self, link: DocumentedLink, exchanges: list[Exchange]) -> str:
        parameters, source_body, answer = self._source(link, exchanges)
        values: dict[str, str] = {}
        for name, expression in link.parameters.items():
            if expression.startswith("$request.path."):
                values[name] = parameters[expression.removeprefix("$request.path.")]
            elif expression.startswith("$response.body#/"):
                node: Any = answer.json()
                for part in expression.removeprefix("$response.body#/").split("/"):
                    node = node[part]
                values[name] = str(node)
            else:
                raise WalkFailed(f"unsupported link expression {expression!r}")
        fresh = self.state.derive("walk", link.source, link.target, "target")
        body = self._target_body(link, source_body, fresh)
        self.send(link.target, values, body, exchanges)
        return f"{len(exchanges)} requests, every answer a 2xx that passed the checks"

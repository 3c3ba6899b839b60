"""The manual review queue and merchants' rule files, worked by operators through the admin API
and the CLI: a decision is stored with who took it and why, and the hook is told; a review left
alone past its deadline takes the rule file's default decision, and the hook is told too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from connector.app import Services
from connector.db.tables import AntifraudAnalysis, utcnow
from tests.antifraud.conftest import order
from tests.cli_support import run
from tests.conftest import MerchantCredentials
from tests.receiver import Receiver, running_receiver

pytestmark = pytest.mark.anyio

ADMIN_TOKEN = "s3cret-admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Operator": "ana@provider.example"}
REVIEW_EVERYTHING = """
thresholds: {review: 50, deny: 90}
review: {deadline: 1h, on_deadline: denied}
rules:
  - {name: everything, kind: amount, above: 0, score: 60}
"""
WORKERS = {
    "admin_token": ADMIN_TOKEN,
    "run_background_workers": True,
    "antifraud_poll_seconds": 0.1,
    "outbox_poll_seconds": 0.1,
    "callback_delay_seconds": 0,
    # Rules loaded by the CLI (another process) are seen at once, not after the usual 5 s.
    "antifraud_rules_cache_seconds": 0,
}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    return {**WORKERS, **getattr(request, "param", {})}


@pytest.fixture
async def admin(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver/admin/antifraud", headers=ADMIN
    ) as http:
        yield http


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


async def queued(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    admin: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    rules: str = REVIEW_EVERYTHING,
) -> dict[str, Any]:
    """Load rules that send every order to review, and send one."""
    loaded = await admin.put(f"/merchants/{merchant.name}/rules", content=rules)
    assert loaded.status_code == 200, loaded.text
    body = order(hook=receiver.url("/hook?accountName=acme"))
    answer = (await antifraud.post("/transactions", json=body, headers=headers)).json()
    assert answer["status"] == "received" and answer["analysisType"] == "manual"
    return answer


async def test_an_operator_approves_through_the_admin_api_and_the_hook_is_told(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    admin: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
) -> None:
    answer = await queued(antifraud, headers, admin, merchant, receiver)
    tid = answer["tid"]

    queue = (await admin.get("/reviews")).json()
    assert [item["tid"] for item in queue] == [tid]
    assert queue[0]["merchant"] == merchant.name and queue[0]["onDeadline"] == "denied"
    assert "order" not in queue[0]  # personal data only on the detail
    detail = (await admin.get(f"/reviews/{tid}")).json()
    assert detail["order"]["miniCart"]["buyer"]["email"] == "john.doe@example.com"
    assert detail["responses"] == {"everything": "order value 150.60 is above 0 (+60)"}

    decided = await admin.post(
        f"/reviews/{tid}/decision", json={"decision": "approved", "reason": "known customer"}
    )
    assert decided.status_code == 200, decided.text
    result = decided.json()
    assert result["status"] == "approved" and result["decidedBy"] == "ana@provider.example"
    assert result["decisionReason"] == "known customer"

    (hook,) = await receiver.wait_for(1)
    assert hook.url == receiver.url("/hook?accountName=acme")
    assert hook.body["status"] == "approved" and hook.body["tid"] == tid
    assert hook.body["analysisType"] == "manual" and hook.body["code"] == "manual-review"
    read = await antifraud.get(f"/transactions/{answer['id']}", headers=headers)
    assert read.json()["status"] == "approved"
    assert (await admin.get("/reviews")).json() == []

    again = await admin.post(
        f"/reviews/{tid}/decision", json={"decision": "denied", "reason": "changed my mind"}
    )
    assert again.status_code == 409 and again.json()["code"] == "not-in-review"
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 1


async def test_concurrent_decisions_on_one_review_let_one_win(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    admin: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
) -> None:
    tid = (await queued(antifraud, headers, admin, merchant, receiver))["tid"]
    decisions = ["approved", "denied"] * 5
    responses = await asyncio.gather(
        *(
            admin.post(f"/reviews/{tid}/decision", json={"decision": d, "reason": "race"})
            for d in decisions
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 9
    (winner,) = [r.json()["status"] for r in responses if r.status_code == 200]
    (hook,) = await receiver.wait_for(1)
    assert hook.body["status"] == winner
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 1


async def test_a_review_past_its_deadline_takes_the_default_and_is_announced(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    admin: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
) -> None:
    rules = REVIEW_EVERYTHING.replace("deadline: 1h, on_deadline: denied",
                                      "deadline: 1s, on_deadline: approved")  # fmt: skip
    answer = await queued(antifraud, headers, admin, merchant, receiver, rules)
    (hook,) = await receiver.wait_for(1, timeout=10)
    assert hook.body["status"] == "approved" and hook.body["code"] == "review-deadline"
    detail = (await admin.get(f"/reviews/{answer['tid']}")).json()
    assert detail["decidedBy"] == "review-deadline" and detail["status"] == "approved"


async def test_admin_api_refuses_bad_requests(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    admin: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
) -> None:
    tid = (await queued(antifraud, headers, admin, merchant, receiver))["tid"]
    for body in ({"decision": "maybe", "reason": "x"}, {"decision": "approved"},
                 {"decision": "approved", "reason": ""}, {"decision": "approved",
                 "reason": "x", "extra": 1}):  # fmt: skip
        response = await admin.post(f"/reviews/{tid}/decision", json=body)
        assert response.status_code == 400, body
    missing = await admin.post("/reviews/nope/decision", json={"decision": "denied",
                                                               "reason": "x"})  # fmt: skip
    assert missing.status_code == 404 and missing.json()["code"] == "analysis-not-found"
    assert (await admin.get("/reviews?limit=0")).status_code == 400
    assert (await admin.get("/reviews?merchant=nobody")).status_code == 404
    no_token = await admin.get("/reviews", headers={"Authorization": "Bearer wrong"})
    assert no_token.status_code == 401
    assert len((await admin.get("/reviews")).json()) == 1  # nothing changed


async def test_rule_files_are_versioned_validated_and_read_back(
    admin: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    current = (await admin.get(f"/merchants/{merchant.name}/rules")).json()
    assert current["default"] is True and current["version"] is None
    assert "card-burst" in current["rules"]

    toml = '[thresholds]\nreview = 30\ndeny = 60\n\n[[rules]]\nname = "big"\nkind = "amount"\n' \
           'above = 100\nscore = 40\n'  # fmt: skip
    loaded = await admin.put(
        f"/merchants/{merchant.name}/rules",
        content=toml,
        headers={"Content-Type": "application/toml"},
    )
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["version"] == 1 and loaded.json()["loadedBy"] == "ana@provider.example"
    assert loaded.json()["thresholds"] == {"review": 30, "deny": 60}

    bad = await admin.put(f"/merchants/{merchant.name}/rules", content="rules: [{kind: nope}]")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid-rules"
    assert "rules.0" in bad.json()["message"]
    still = (await admin.get(f"/merchants/{merchant.name}/rules")).json()
    assert still["version"] == 1 and still["source"] == toml
    assert (await admin.put("/merchants/nobody/rules", content=toml)).status_code == 404


# ----------------------------------------------------------------------------- the CLI


async def test_the_cli_loads_rules_lists_and_denies_reviews(
    environment: Path,
    capsys: pytest.CaptureFixture[str],
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    merchant: MerchantCredentials,
    receiver: Receiver,
    services: Services,
) -> None:
    rules_file = environment / "rules.yaml"
    rules_file.write_text(REVIEW_EVERYTHING)
    code, out, err = await run(capsys, "rules", "validate", str(rules_file))
    assert code == 0 and out.startswith("valid: 1 rules"), err
    (environment / "bad.yaml").write_text("thresholds: {review: 9, deny: 1}")
    code, _, err = await run(capsys, "rules", "validate", str(environment / "bad.yaml"))
    assert code == 1 and "review threshold" in err

    code, out, err = await run(
        capsys, "rules", "load", str(rules_file), "--merchant", merchant.name, "--operator", "bob"
    )
    assert code == 0, err
    assert json.loads(out)["version"] == 1
    code, out, _ = await run(capsys, "rules", "show", "--merchant", merchant.name)
    assert "version 1" in out and "everything" in out
    code, out, _ = await run(capsys, "rules", "show")
    assert "card-burst" in out  # the default

    body = order(hook=receiver.url("/hook"))
    answer = (await antifraud.post("/transactions", json=body, headers=headers)).json()
    assert answer["status"] == "received"

    code, out, _ = await run(capsys, "reviews", "list", "--merchant", merchant.name)
    assert [item["tid"] for item in json.loads(out)] == [answer["tid"]]
    code, out, _ = await run(capsys, "reviews", "show", answer["tid"])
    assert json.loads(out)["order"]["id"] == body["id"]
    code, out, err = await run(
        capsys, "reviews", "deny", answer["tid"], "--reason", "stolen card", "--operator", "bob"
    )
    assert code == 0, err
    assert json.loads(out)["status"] == "denied" and json.loads(out)["decidedBy"] == "bob"
    (hook,) = await receiver.wait_for(1)
    assert hook.body["status"] == "denied"
    code, _, err = await run(capsys, "reviews", "approve", answer["tid"], "--reason", "oops")
    assert code == 1 and "not waiting for review (it is denied)" in err


async def test_the_cli_expires_overdue_reviews(
    environment: Path,
    capsys: pytest.CaptureFixture[str],
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    admin: httpx.AsyncClient,
    merchant: MerchantCredentials,
    receiver: Receiver,
    services: Services,
) -> None:
    answer = await queued(antifraud, headers, admin, merchant, receiver)
    async with services.database.writer() as session:
        await session.execute(
            update(AntifraudAnalysis)
            .where(AntifraudAnalysis.tid == answer["tid"])
            .values(deadline=utcnow())
        )
    code, out, _ = await run(capsys, "reviews", "expire")
    assert code == 0 and out.strip() in {
        "decided 1 analyses past their deadline",
        "decided 0 analyses past their deadline",  # the running worker was quicker
    }
    (hook,) = await receiver.wait_for(1)
    assert hook.body["status"] == "denied"

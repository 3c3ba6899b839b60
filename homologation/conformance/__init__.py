"""Schemathesis' phases (examples, coverage, fuzzing, stateful) against a deployment, reported
as homologation scenarios.

`run_conformance` tests the operations `openapi.yaml` describes for the chosen protocols (and
the admin API, tag Operators, of those protocols when an admin token is given), over HTTP only,
at any base URL, with a merchant's credentials. It returns, per protocol, a "fixtures"
scenario, one scenario per phase ("payments: fuzzing"...) with one `Check` per operation
(passed, with the statuses answered; or failed, with what was found, the `curl` command that
reproduces it and the exchanges that prove it), and a "VTEX specification" scenario: how the
answers compared with VTEX's own specification (`homologation.vtex_specs`).

**Checks.** Schemathesis' built-in checks (server errors, status codes, content types, bodies
and headers against the document, authentication actually enforced, deleted resources gone,
created ones available, `max_response_time`...) but for those `DISABLED_CHECKS` and
`DISABLED_FOR` leave out, with the reason; and checks of what only the protocols say,
registered with `@schemathesis.check` (they only act on this module's runs):

* `settle_within_authorization`: per `paymentId`, the successful settlements (distinct
  `requestId`s) never exceed the authorized value (`maxValue` when announced, nothing for a
  denied payment), nor what each asked; refunds never exceed what was settled; a settled
  payment is never cancelled, nor a cancelled one settled; a repeated `requestId` answers what
  it answered;
* `idempotent_create_payment`: a repeated `POST /payments` (same `paymentId`) keeps
  `paymentId`, `tid`, `nsu` and `authorizationId` (null ones may be set later); the first `200`
  of every `paymentId` is sent again once, to make sure;
* `vtex_test_suite_cards`: with `X-VTEX-API-Is-TestSuite: true`, VTEX's Test Suite cards get
  their statuses (4444333322221111 approved, 4444333322221112 denied, 4222222222222224 and
  4222222222222225 undefined, then approved and denied);
* `agrees_with_vtex_specification`: `VtexSpecs.differences` finds no unexpected difference
  (the known ones are listed with their reasons in the "VTEX specification" scenario).

A deployment keeps what earlier runs did (the documented examples' fixed `paymentId`s, and a
derandomized run sends the same generated ones again): what depends on a payment's whole
history (the authorized and settled totals, the first answer of a Test Suite card) is only
checked on the payments this run made itself (`Payment.fresh`); the rest on every payment.

**Links.** The stateful phase follows the document's OpenAPI links (`createPayment` ->
settle -> refund, `createPayment` -> cancel, the gift card transaction -> settlements ->
cancellations, the anti-fraud analysis -> status, update, stop); its scenario says which it
followed. Its walk is random: each of `REQUIRED_LINKS` it did not follow to a 2xx is then
followed once (`LinkWalker`), and a check says so.

**Realistic data.** Random data mostly meets the service's 400s and 404s. About half of the
fuzzed and stateful requests are therefore made realistic by generation hooks: a
`POST /payments` with one of VTEX's Test Suite cards (or a bank invoice, or the Test Suite's
redirect card), `X-VTEX-API-Is-TestSuite: true` (so that the sandbox decides, never a real
acquirer), a `callbackUrl` on VTEX's domain, a plausible amount and a `paymentId` new to the
deployment; settlements, refunds and cancellations of a payment made for the run; gift card
calls on a card made (and credited) for the run, with its token; anti-fraud reads, updates and
stops of an analysis made for the run. Those fixtures are made first, over plain HTTP, and
reported ("payments: fixtures"). Run it against a homologation deployment, never a production
one: it creates payments, cards and analyses (and, with the admin token, issues, blocks and
credits cards and loads anti-fraud rules).

**Design.** Schemathesis' engine (`schemathesis.engine.from_schema(schema).execute()`), not its
CLI: the engine's events carry each scenario's recorder (cases, requests, answers, check
results with their curl reproduction), which become `Scenario`, `Check` and `Exchange`
directly, and the custom checks and generation hooks are plain functions sharing the run's
state (the ledger of amounts, the fixtures). With the CLI, they would be a hooks module loaded
by path sharing that state through files, and the results would be parsed back from report
files. Each protocol is its own engine run: its operations share a mount and credentials (the
payment protocol's `X-VTEX-API-*` headers, the others' `X-PROVIDER-API-*`, which
`ignored_auth` removes and replaces by wrong ones). The runs go in parallel, one
`python -m homologation.conformance` process each: Schemathesis' generation is CPU-bound
Python (threads would share one core), and `multiprocessing` would import the caller's
`__main__` again in its workers. Without a `seed`, generation is derandomized: every run sends
the same requests (but for the ids made new to the deployment); shrinking is off (a failure
against a live, stateful deployment is reported as found).
"""

from homologation.conformance.config import PHASES, SUITES, ConformanceOptions
from homologation.conformance.runner import run_conformance

__all__ = ["PHASES", "SUITES", "ConformanceOptions", "run_conformance"]

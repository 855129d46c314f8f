"""schemathesis hooks of the test command's fuzzer stage (scripts/external-clients.sh loads this
file through SCHEMATHESIS_HOOKS).

`positive_data_by_code` replaces the built-in `positive_data_acceptance` check (the stage runs
with `--exclude-checks positive_data_acceptance`). It is the same check, with one difference the
contract requires: a schema-valid request may be refused because of *state* the schema cannot
describe, and the contract answers those refusals with their own codes (api.md, "Errors":
business-rule failures are 400 as in seed 001): INSUFFICIENT_STOCK, ALREADY_ISSUED,
COUPON_SOLD_OUT, EMPTY_ORDER, INSUFFICIENT_BALANCE, ... and 422 IDEMPOTENCY_KEY_REUSED when the
fuzzer sends a different request under a key it used before. Such answers pass. A 400
`VALIDATION_ERROR` to a schema-valid request still fails: that is a constraint the document does
not declare, exactly what the built-in check is for.
"""

import json

import schemathesis
from schemathesis.specs.openapi import checks as builtin

# A refusal about the request's form, not about the state it met.
FORM_CODES = {"VALIDATION_ERROR"}
# Statuses the contract uses for state-dependent refusals (with a code other than FORM_CODES).
STATE_STATUSES = {400, 422}


def _code(response):
    try:
        return json.loads(response.content).get("code")
    except (ValueError, AttributeError, TypeError):
        return None


@schemathesis.check
def positive_data_by_code(ctx, response, case):
    """Valid data is accepted, or refused by a business rule's own code (see the module doc)."""
    try:
        return builtin.positive_data_acceptance(ctx, response, case)
    except AssertionError:
        code = _code(response)
        if response.status_code in STATE_STATUSES and code and code not in FORM_CODES:
            return None
        raise

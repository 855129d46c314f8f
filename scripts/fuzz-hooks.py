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

A request whose path parameter its own schema forbids is no positive data, whatever phase made
it: schemathesis fills a path parameter from another operation's response field *of the same
name* (the stateful phase's links and the resource pool), so `event_id` of an outbox event, a
UUID, lands in `/admin/waiting-rooms/{event_type}/{event_id}`, whose `event_id` is an integer.
The 400 that answers it is the contract, not a finding; every other check still judges it
(`negative_data_rejection` among them).

CROSS_FIELD_RULES lists the rules that relate two fields, or an item to its siblings, which JSON
Schema cannot state: a VALIDATION_ERROR naming one of the fields such a rule names passes on
that operation (the README lists them too). Every other refusal, and every other check, still
counts.
"""

import json
import re

import jsonschema_rs
import schemathesis
from schemathesis.specs.openapi import checks as builtin

# A refusal about the request's form, not about the state it met.
FORM_CODES = {"VALIDATION_ERROR"}
# Operation -> (the fields whose VALIDATION_ERROR may come from such a rule, the rules). A
# refusal naming another field still fails.
CROSS_FIELD_RULES = {
    "POST /api/orders": (
        r"from_cart",
        "items and from_cart: true exclude each other",
    ),
    "POST /api/admin/coupons": (
        r"issue_starts_at|issue_ends_at|expires_at|valid_days|discount_value|max_discount|min_order_amount|currency|name"
        r"|product_ids",
        "product_ids name existing products (state); the issue window ends after it starts and not in the past; exactly one of expires_at and valid_days; "
        "a PERCENT discount is 1-100, a FIXED one any positive amount; expires_at is not before the window's "
        "end; amounts are in the market's currency (and the name has no surrounding whitespace)",
    ),
    "PATCH /api/admin/coupons/{coupon_id}": (
        r"issue_starts_at|issue_ends_at|expires_at|valid_days|discount_value|max_discount|min_order_amount|currency|name"
        r"|product_ids",
        "the same rules, over the stored campaign with the edit applied",
    ),
    "POST /api/admin/orders/{order_id}/refunds": (
        r"items|amount",
        "exactly one of items and amount",
    ),
    "POST /api/admin/products": (
        r"options\[\d+\]\.name",
        "option names are unique within the product (uniqueItems compares whole options, not one field)",
    ),
    "PATCH /api/admin/products/{product_id}": (
        r"options\[\d+\]\.(id|name)",
        "each option edited is an option of this product (state), and option names stay unique within it",
    ),
}
# Statuses the contract uses for state-dependent refusals (with a code other than FORM_CODES):
# 409 is an order in the wrong state for fulfilment or refund (ORDER_NOT_FULFILLABLE/REFUNDABLE).
STATE_STATUSES = {400, 409, 422}


def _body(response):
    try:
        body = json.loads(response.content)
        return body if isinstance(body, dict) else {}
    except (ValueError, AttributeError, TypeError):
        return {}


def _path_off_schema(case):
    """The path parameters sent that their declared schemas forbid (see the module doc)."""
    sent = case.path_parameters or {}
    off = set()
    for param in case.operation.path_parameters:
        schema = param.validation_schema
        if param.name not in sent or not isinstance(schema, dict):
            continue
        value = sent[param.name]
        # A path is text: an integer parameter is judged by the integer the text spells.
        if schema.get("type") == "integer" and isinstance(value, str):
            integer = re.fullmatch(r"(-?[0-9]+)(\.0*)?", value)
            if not integer:
                off.add(param.name)
                continue
            value = int(integer.group(1))
        if not jsonschema_rs.validator_for(schema).is_valid(value):
            off.add(param.name)
    return off


@schemathesis.check
def positive_data_by_code(ctx, response, case):
    """Valid data is accepted, or refused by a business rule's own code (see the module doc)."""
    try:
        return builtin.positive_data_acceptance(ctx, response, case)
    except AssertionError:
        body = _body(response)
        field = str((body.get("details") or {}).get("field", ""))
        if response.status_code == 400 and body.get("code") == "VALIDATION_ERROR" and field in _path_off_schema(case):
            return None
        code = body.get("code")
        if response.status_code in STATE_STATUSES and code and code not in FORM_CODES:
            return None
        rule = CROSS_FIELD_RULES.get(f"{case.operation.method.upper()} {case.operation.path}")
        if rule and code == "VALIDATION_ERROR" and re.fullmatch(rule[0], field):
            return None
        raise

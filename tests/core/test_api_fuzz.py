"""The served OpenAPI schema against the server: a bounded schemathesis run over every POS operation.

Schemathesis loads /api/v1/schema/ from the WSGI application and sends every operation data the schema allows
and data it refuses, some of it naming real cards, members, vouchers, coupons, payments and receipts (fuzz
dictionaries), so that the calls reach the services and not only 404. Every answer must be documented
(status, body, headers), data the schema allows must never be refused as malformed (400), data outside it must
be refused, and nothing may answer 500. Afterwards every balance still equals its ledger.

A few documented rules depend on the data already there or are beyond JSON Schema (OpenAPI 3.0): for the data
it means to be valid the generator keeps to them, see `_SENT_AS_A_TILL_WOULD` and `as_a_till_sends_it`.
"""

import itertools
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

from campaigns.models import CouponBatch, CouponTemplate
from campaigns.services import coupons_issue
from cards.models import Card
from cards.services import payments
from config.wsgi import application
from core.api import IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_PATTERN
from core.ledgers import ledgers_check
from core.pii import InvalidPersonalData, normalize_id_number, resident_id_parse
from membership.api import LOOKUPS
from membership.models import EarnRule
from membership.services import purchase_record
from stores.models import Format
from stores.services import terminal_create
from tests.cards import conftest as card_fixtures
from tests.cards import test_vouchers as voucher_fixtures
from tests.membership.conftest import register, resident_id

# The card fixtures of tests/cards/conftest.py and the voucher fixtures of tests/cards/test_vouchers.py.
card_rules = card_fixtures.card_rules
stored_product = card_fixtures.stored_product
bearer_product = card_fixtures.bearer_product
pin_product = card_fixtures.pin_product
issued_batch = voucher_fixtures.issued_batch
oil = voucher_fixtures.oil
supplier = voucher_fixtures.supplier

SCHEMA_PATH = "/api/v1/schema/"
# Fixed and derandomized, so CI sends the same requests on every run and a failure reproduces. To look further,
# run it by hand with FUZZ_SEED=<any number> (random from that seed) and FUZZ_EXAMPLES=<say 500>.
EXPLORE_SEED = os.environ.get("FUZZ_SEED")
SEED = int(EXPLORE_SEED or 20261206)
# Generated requests per operation in the fuzzing phase (the coverage phase adds its boundary cases).
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 100))
# The share of requests that name a real card, member, voucher, payment or receipt.
REAL_SHARE = 0.5
# Data the schema allows may be refused for a reason of the business (404, 409, 422 ...), never as malformed.
ACCEPTED = ["2xx", "401", "403", "404", "409", "422", "429", "503"]
CHECKS = [
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
    "response_headers_conformance", "positive_data_acceptance", "negative_data_rejection", "missing_required_header",
    "unsupported_method", "allow_header_conformance",
]
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
QUERY, BODY = ParameterLocation.QUERY, ParameterLocation.BODY
_keys = itertools.count(1)


@dataclass
class World:
    """What exists before the run: the identifiers a path, a query or a body may name for real."""

    key: str
    card_nos: list[str]
    pin_card_nos: list[str]
    transaction_ids: list[str]
    voucher_codes: list[str]
    member_nos: list[str]
    member_card_nos: list[str]
    phones: list[str]
    id_numbers: list[str]
    receipt_nos: list[str]
    coupon_codes: list[str]
    claim_codes: list[str]
    dictionaries: dict[str, list] = field(init=False)

    def __post_init__(self):
        self.dictionaries = {
            "cards": self.card_nos + self.pin_card_nos, "transactions": self.transaction_ids,
            "vouchers": self.voucher_codes, "members": self.member_nos, "member_cards": self.member_card_nos,
            "phones": self.phones, "id_numbers": self.id_numbers, "receipts": self.receipt_nos,
            # A path's {code} is a pickup voucher's or a coupon's.
            "codes": self.voucher_codes + self.coupon_codes, "claim_codes": self.claim_codes,
            # Receipt numbers no sale has used yet, and the few units a voucher holds.
            "new_receipts": [f"FZ-{number:03d}" for number in range(1, 101)], "units": [1, 2, 3],
        }


# Where each dictionary's values go ("location.name", a body field by its path).
BINDINGS = {
    "path.card_no": "cards", "path.transaction_id": "transactions", "path.code": "codes", "path.member_no": "members",
    "path.receipt_no": "receipts",
    "query.member_no": "members", "query.card_no": "member_cards", "query.phone": "phones",
    "query.id_number": "id_numbers",
    "body.member_no": "members", "body.original_transaction_id": "transactions",
    "body.original_receipt_no": "receipts", "body.receipt_no": "new_receipts", "body.quantity": "units",
    "body.claim_code": "claim_codes",
}


@pytest.fixture
def fuzz_world(db, dept001, stored_product, bearer_product, pin_product, issued_batch, hq_admin) -> World:
    """A terminal of DEPT001; earn rules; members with points; cards with balance and payments; vouchers."""
    _terminal, key = terminal_create(store_code="DEPT001", name="FUZZ")
    for code in ("DEPT", "SUPER", "ELEC", "AUTO"):
        EarnRule.objects.get_or_create(format=Format.objects.get(code=code),
                                       defaults={"amount_per_point": Decimal("1.00")})
    id_number = resident_id(date(1948, 3, 12))
    members = [
        register(name="李建国", phone="13800138000", card_no="M-0000001", store=dept001),
        register(name="张秀英", id_type="resident_id", id_number=id_number, family_phone="13908070605",
                 store=dept001),
        register(name="王芳", phone="010-62345678", store=dept001),
    ]
    receipts = []
    for number, member in enumerate(members, start=1):
        receipts.append(f"F-{number}")
        # Before any return the run sends (see _YEAR_SENT).
        purchase_record(store=dept001, member=member, receipt_no=receipts[-1], amount=Decimal("5000.00"),
                        occurred_at=timezone.make_aware(datetime(2019, 6, 1, 12)))
    make_card = card_fixtures.make_card
    cards = [
        make_card(stored_product, balance="3000.00", card_no="6000000000000001", store=dept001),
        make_card(stored_product, balance="50.00", card_no="6000000000000002", store=dept001),
        make_card(bearer_product, balance="800.00", card_no="6000000000000003", store=dept001),
        make_card(stored_product, balance="10.00", card_no="6000000000000005", store=dept001,
                  status=Card.Status.FROZEN),
        make_card(bearer_product, balance="0.00", card_no="6000000000000006", store=dept001,
                  expires_at=timezone.now() - timedelta(days=1)),
    ]
    pin_card = make_card(pin_product, balance="200.00", pin="123456", card_no="6000000000000004", store=dept001)
    transactions = [
        payments.card_debit(card_no=cards[number % 2 * 2].card_no, amount=Decimal("20.00"),
                            receipt_no=f"C-{number}", store=dept001).transaction_id
        for number in range(9)
    ]
    vouchers = voucher_fixtures.sold(issued_batch, store=dept001, user=hq_admin, count=3)
    coupon_codes = _coupons(members)
    return World(
        key=key, card_nos=[card.card_no for card in cards], pin_card_nos=[pin_card.card_no],
        transaction_ids=transactions, voucher_codes=[voucher.code for voucher in vouchers],
        member_nos=[member.member_no for member in members], member_card_nos=["M-0000001"],
        phones=["13800138000", "13908070605", "010-62345678"], id_numbers=[id_number], receipt_nos=receipts,
        coupon_codes=coupon_codes, claim_codes=["FUZZ20"],
    )


def _coupons(members) -> list[str]:
    """满200减30 coupons for DEPT stores held by the members, bulk codes anyone may use, and a poster's claim code."""
    threshold = CouponTemplate.objects.create(
        code="FZ200", name="满200减30", kind=CouponTemplate.Kind.THRESHOLD, status=CouponTemplate.Status.ACTIVE,
        threshold=Decimal("200.00"), amount=Decimal("30.00"), per_member_limit=5, total_budget=Decimal("3000.00"),
    )
    threshold.formats.set([Format.objects.get(code="DEPT")])
    CouponTemplate.objects.create(code="FZCLAIM", name="20元券", status=CouponTemplate.Status.ACTIVE,
                                  amount=Decimal("20.00"), claim_code="FUZZ20", valid_days=30)
    batches = [
        coupons_issue(template=threshold, member_ids=[member.pk for member in members] * 5,
                      channel=CouponBatch.Channel.MEMBER_LIST),
        coupons_issue(template=threshold, quantity=20, channel=CouponBatch.Channel.BULK),
    ]
    return [coupon.code for batch in batches for coupon in batch.coupons.order_by("pk")]


# --- documented rules JSON Schema cannot state ---------------------------------------------------------------


def _lookup_parameters(case) -> list[str]:
    query = case.query or {}
    return [name for name in LOOKUPS if query.get(name) not in (None, "")]


def _a_lookup_parameter(case, world: World) -> bool:
    """Lookup: exactly one of phone, member_no, card_no or id_number (OpenAPI has no "exactly one" of parameters).

    At least one here; the first is then kept without the others (_one_lookup_parameter_kept).
    """
    return bool(_lookup_parameters(case))


def _one_lookup_parameter_kept(case):
    others = _lookup_parameters(case)[1:]
    if others:
        case.query = {name: value for name, value in case.query.items() if name not in others}
    return case


def _resident_id_checks(case, world: World) -> bool:
    """Lookup: an 18-character resident ID needs its province, birth date and check digit right."""
    number = normalize_id_number(str((case.query or {}).get("id_number", "")))
    if len(number) != 18:
        return True
    try:
        resident_id_parse(number)
    except InvalidPersonalData:
        return False
    return True


def _pin_given(case, world: World) -> bool:
    """Debit: a card with a PIN needs its six digits (a card without one ignores the field)."""
    if (case.path_parameters or {}).get("card_no") not in world.pin_card_nos or not isinstance(case.body, dict):
        return True
    return bool(re.fullmatch(r"[0-9]{6}", str(case.body.get("pin") or "").strip()))


# Per operation: the rules a request meant to be valid keeps to, each with the part of the request it reads.
_SENT_AS_A_TILL_WOULD = {
    "members_lookup": [(QUERY, _a_lookup_parameter), (QUERY, _resident_id_checks)],
    "cards_debit": [(BODY, _pin_given)],
}
# A sale is not in the future and a return not before its sale: the times sent are moved into these years
# (2019 and 2021 have the same days, and a year apart no UTC offset can turn their order).
_YEAR_SENT = {"purchases_create": "2019", "purchases_returns_create": "2021"}


def _meant_valid(case, location) -> bool:
    return case.meta is not None and not case.meta.is_negative_at(location)


def _operation_id(context) -> str:
    return context.operation.definition.raw.get("operationId", "")


def _time_kept(body, year: str):
    if isinstance(body, dict) and isinstance(body.get("occurred_at"), str) and len(body["occurred_at"]) > 4:
        body = {**body, "occurred_at": year + body["occurred_at"][4:]}
    return body


# --- the run ------------------------------------------------------------------------------------------------


@pytest.fixture
def connection_kept():
    """The test's transaction survives the requests: Django's test client unhooks the same signal handler.

    Called straight, the WSGI application closes the connection at each request's start and end (it is not in
    autocommit inside the test's transaction), and PostgreSQL would then answer every later call 503.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(fuzz_world, connection_kept, settings):
    # Unknown card numbers soon close every card call with 429 (tests/cards/test_api.py proves that): the run
    # needs the operations themselves.
    settings.CARD_GUESS_LIMIT = 1_000_000
    cache.clear()
    loaded = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application, config=_config(fuzz_world))

    def keeps_to_the_rules(context, case) -> bool:
        rules = _SENT_AS_A_TILL_WOULD.get(_operation_id(context), [])
        return all(rule(case, fuzz_world) for location, rule in rules if _meant_valid(case, location))

    def as_a_till_sends_it(context, case):
        operation = _operation_id(context)
        if operation in _YEAR_SENT and _meant_valid(case, BODY):
            case.body = _time_kept(case.body, _YEAR_SENT[operation])
        if operation == "members_lookup" and _meant_valid(case, QUERY):
            case = _one_lookup_parameter_kept(case)
        return case

    # The fuzzing and coverage phases pass each case through filter_case and map_case, the examples phase
    # through before_add_examples.
    loaded.hook("filter_case")(keeps_to_the_rules)
    loaded.hook("map_case")(as_a_till_sends_it)

    @loaded.hook
    def before_add_examples(context, examples):
        examples[:] = [as_a_till_sends_it(context, case) for case in examples if keeps_to_the_rules(context, case)]

    yield loaded
    cache.clear()


def _config(world: World) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {world.key}"},
        "generation": {
            "max-examples": MAX_EXAMPLES, "deterministic": EXPLORE_SEED is None, "database": "none",
            "unique-inputs": True,
            # The terminal's key is given above; 401 has tests of its own (tests/core/test_api_frame.py).
            "with-security-parameters": False,
            # The frame refuses NUL anywhere, property names too (tests/core/test_api_hostile_input.py), which
            # OpenAPI 3.0 cannot state for property names.
            "allow-x00": False,
        },
        "dictionaries": {name: {"values": values} for name, values in world.dictionaries.items()},
        "parameters": {key: {"dictionary": name, "probability": REAL_SHARE} for key, name in BINDINGS.items()},
        "checks": {
            "enabled": False, **{name: {"enabled": True} for name in CHECKS},
            "positive_data_acceptance": {"enabled": True, "expected-statuses": ACCEPTED},
        },
    })


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.fuzz
@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_every_operation_answers_as_its_schema_says(case):
    # A fresh Idempotency-Key for every POST meant to carry a valid one (a reused key would only replay an
    # answer), sent in place of the generated one so that the case stays as it was generated.
    key = (case.headers or {}).get(IDEMPOTENCY_HEADER)
    fresh = None
    if isinstance(key, str) and _IDEMPOTENCY_KEY.fullmatch(key):
        fresh = {IDEMPOTENCY_HEADER: f"fuzz-{next(_keys)}"}

    case.call_and_validate(headers=fresh)

    report = ledgers_check()
    assert report.ok, [str(difference) for difference in report.differences]


# --- what the runs found ------------------------------------------------------------------------------------


def _post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       HTTP_IDEMPOTENCY_KEY=f"found-{next(_keys)}")


def _refused(response, field):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"], error


@pytest.fixture
def sale_at_dept001(api, dept001):
    EarnRule.objects.create(format=dept001.format, amount_per_point=Decimal("1.00"))
    member = register(name="李建国", phone="13800138000", store=dept001)
    return purchase_record(store=dept001, member=member, receipt_no="S-1", amount=Decimal("100.00"),
                           occurred_at=timezone.now() - timedelta(hours=1))


def test_returns_of_0_10_and_0_20_leave_the_purchase_open_to_a_third(api, sale_at_dept001):
    # SQLite added the returned amounts as binary floats: the third return found the purchase "changed under its
    # lock" and answered 500.
    for receipt_no, amount in (("RT-1", "0.10"), ("RT-2", "0.20"), ("RT-3", "0.01")):
        response = _post(api, "/api/v1/purchases/returns",
                         {"original_receipt_no": "S-1", "receipt_no": receipt_no, "amount": amount})
        assert response.status_code == 201, response.content

    sale_at_dept001.refresh_from_db()
    assert sale_at_dept001.returned_amount == Decimal("0.31")


def test_an_amount_with_a_final_newline_is_refused(api, sale_at_dept001):
    # "$" in the money pattern let "12.50\n" through.
    response = _post(api, "/api/v1/purchases/returns",
                     {"original_receipt_no": "S-1", "receipt_no": "RT-1", "amount": "12.50\n"})

    _refused(response, "amount")


def test_a_receipt_number_with_a_tab_around_it_is_refused(api, sale_at_dept001):
    # The field trimmed any whitespace before checking for printable ASCII.
    response = _post(api, "/api/v1/purchases/returns",
                     {"original_receipt_no": "S-1", "receipt_no": "\tRT-1", "amount": "1.00"})

    _refused(response, "receipt_no")


@pytest.mark.parametrize("line", [
    {"sku": "A", "amount": 10, "quantity": 1},
    {"sku": "A", "amount": "1e1", "quantity": 1},
    {"sku": "A", "amount": "10.00", "quantity": "1e0"},
    {"sku": "A", "amount": "10.00", "quantity": 1.5},
    {"sku": "A" + " " * 64, "amount": "10.00", "quantity": 1},
])
def test_a_card_line_outside_the_schema_is_refused_and_moves_nothing(api, stored_product, line):
    # Money as a JSON number and numbers such as "1e1" passed as line amounts and quantities.
    card = card_fixtures.make_card(stored_product, balance="100.00", card_no="6000000000000001")

    response = _post(api, f"/api/v1/cards/{card.card_no}/debit",
                     {"amount": "10.00", "receipt_no": "R-1", "lines": [line]})

    _refused(response, "lines")
    card.refresh_from_db()
    assert card.balance == Decimal("100.00")


@pytest.mark.parametrize("line", [
    {"sku": "A", "amount": "10.00", "quantity": 1.5},
    {"sku": "A", "amount": "1e1", "quantity": 1},
    {"sku": "A", "amount": " 10.00", "quantity": 1},
])
def test_a_purchase_line_outside_the_schema_is_refused(api, sale_at_dept001, line):
    member_no = sale_at_dept001.member.member_no
    response = _post(api, "/api/v1/purchases", {
        "member_no": member_no, "receipt_no": "S-2", "amount": "10.00",
        "occurred_at": timezone.localtime().isoformat(), "lines": [line],
    })

    _refused(response, "lines")


@pytest.mark.parametrize("id_number", ["ſſſſſ", "ßßßßß"])
def test_an_id_number_that_upper_case_turns_into_ascii_letters_is_refused(api, id_number):
    # "ſ".upper() is "S": five of them were read as the passport number SSSSS.
    response = api.get("/api/v1/members/lookup", {"id_number": id_number})

    _refused(response, "id_number")


def test_every_operation_documents_the_frame_answers_and_every_post_its_idempotency_key(api):
    schema = api.get(SCHEMA_PATH, HTTP_ACCEPT="application/json").json()

    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("400", "401", "429", "503"):
                assert responses[status]["content"]["application/json"]["schema"] == envelope, (path, method)
            assert responses["503"]["headers"]["Retry-After"]["required"] is True
            assert "Retry-After" in responses["429"]["headers"]
            keys = [parameter for parameter in operation.get("parameters", [])
                    if parameter["in"] == "header" and parameter["name"] == IDEMPOTENCY_HEADER]
            if method == "post":
                assert keys[0]["required"] is True and keys[0]["schema"]["pattern"] == IDEMPOTENCY_KEY_PATTERN
            else:
                assert keys == []

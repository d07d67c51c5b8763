"""Every admin screen refuses a store manager another store's objects (DESIGN section 5, "Who sees what").

One test, parametrized over every model registered in the admin site, so a screen is covered the day it is
registered. For each model the test decides from its admin what a store manager (门店店长) must get:

(a) the manager may not view the model at all: the change and history pages of any object are refused;
(b) the admin is store-scoped (`store_path`, stores/admin_base.py): an object of another store, found by following
    store_path, is refused on its change page and its history page, and none of its identifying texts nor the
    receipt numbers of its rows show; an object of the manager's own store still opens;
(c) master data every store may read: listed in MASTER_DATA with the reason.

An admin that fits none of these fails the test saying what to do. The data is the project's demo (a small
`seed_demo`) and, at another store, what the demo does not write, loaded once for the module.
"""

import operator
from datetime import date, timedelta
from decimal import Decimal
from functools import reduce
from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.db.models import Q
from django.test import RequestFactory
from django.utils import timezone

from cards.models import Card, CardProduct, Voucher
from cards.services.operations import card_return_request
from cards.services.payments import card_debit
from cards.services.production import card_numbers_parse, transfer_create
from cards.services.vouchers import voucher_redeem
from core.pii import resident_id_check_digit
from membership.models import Benefit, BenefitQuota, Gift, MergeCandidate
from membership.services import MemberInput, member_register
from membership.services.benefits import benefit_use
from membership.services.gifts import gift_redeem
from membership.services.members import merge_candidates_add
from membership.services.points import points_cash_out
from membership.services.purchases import purchase_record, purchase_return
from stores.admin_base import store_paths
from stores.models import Store
from stores.queries import user_store_ids
from stores.services import terminal_create
from tests.cards.conftest import make_card

# A store manager of the demo staff (stores/demo/; the conftest fixtures would clash with its usernames). The
# other store is DEPT001, where the demo sells its pickup vouchers; the test adds there what the demo does not write.
MANAGER = "super001_manager"
MANAGER_STORE = "SUPER001"
OTHER_STORE = "DEPT001"
HQ_USER = "hq_approver"

# Read by every store, with no store's sales, receipts, operators or customers on their pages. Anything that
# carries those (vouchers, their ledger, brand discounts, sale orders, transfers ...) is scoped, never listed here.
MASTER_DATA = {
    "membership.Tag": "member labels the group shares; a tag's page lists no members",
    "membership.Tier": "the tiers and what each gives, which every desk explains",
    "membership.PointsPolicy": "the group's one points policy",
    "membership.EarnRule": "points per format, the same at every store of the format",
    "membership.Gift": "the gift catalogue; its stock inline and total count only the user's stores",
    "membership.Benefit": "the benefit catalogue and each tier's quota, which every desk explains",
    "cards.CardProduct": "the card products every desk sells",
    "cards.CardRules": "the prepaid card rules every desk applies",
    "cards.Supplier": "voucher suppliers headquarters keeps; stores read them",
    "cards.VoucherProduct": "what a voucher is good for, read by the stores handing out the goods",
    "cards.VoucherBatch": "headquarters' issue of vouchers (product, quantity, price, validity) the stores sell "
                          "from; its page has no store's sales, receipts or buyers",
    "cards.ProductionBatch": "headquarters' print runs of blank cards (vendor, number ranges); its stock table "
                             "counts only the user's stores' cards",
}

# Fields whose values name an object or a receipt; with str(obj), the receipt numbers of the rows pointing to the
# object and a masked voucher code, none may show on a refused page.
IDENTIFYING_FIELDS = frozenset({
    "code", "name", "card_no", "member_no", "order_no", "receipt_no", "transfer_no", "batch_no", "transaction_id",
    "external_no", "subject_repr", "buyer_name", "holder_name", "phone",
})
MIN_TEXT = 3  # shorter texts could show on any page


def _resident_id(birth: date, serial: int) -> str:
    first17 = f"500103{birth:%Y%m%d}{serial:03d}"
    return first17 + resident_id_check_digit(first17)


def _rows_the_demo_does_not_write(store: Store, *, own: Store, hq_user: User) -> None:
    """At `store`: a terminal; a member who buys, takes a gift, cashes points out and returns the purchase, so
    owes points; a purchase held in a return window (at a car store); a card paid with, then asked back; cards sent
    from headquarters; a pair of possible duplicates. At `own`: a voucher the other store sold, partly redeemed."""
    now = timezone.now()
    terminal_create(store_code=store.code, name="T-SCOPE")
    holder_id = _resident_id(date(1975, 6, 1), 1)
    member = member_register(data=MemberInput(name="欧阳建国", phone="13700137001", id_type="resident_id",
                                              id_number=holder_id), store=store)
    twin = member_register(data=MemberInput(name="欧阳建华", phone="13700137002"), store=store)
    merge_candidates_add([(member.pk, twin.pk)], reason=MergeCandidate.Reason.SAME_PHONE)
    purchase_record(store=store, member=member, receipt_no="SCOPE-P-1", amount=Decimal("600.00"),
                    occurred_at=now - timedelta(minutes=5))
    gift_redeem(member=member, gift=Gift.objects.get(code="BAG"), store=store, operator=hq_user)
    parking, _created = Benefit.objects.get_or_create(code="PARKING", defaults={"name": "免费停车", "unit": "hour"})
    BenefitQuota.objects.get_or_create(benefit=parking, tier=member.tier, defaults={"quantity": 4})
    benefit_use(member=member, code="PARKING", quantity=1, store=store, receipt_no="SCOPE-B-1")
    member.refresh_from_db()
    points_cash_out(member=member, points=member.points, store=store, receipt_no="SCOPE-C-1")
    purchase_return(store=store, original_receipt_no="SCOPE-P-1", receipt_no="SCOPE-R-1", amount=Decimal("600.00"))
    car_store = Store.objects.filter(format__code="AUTO").exclude(pk=own.pk).order_by("code").first()
    purchase_record(store=car_store, member=member, receipt_no="SCOPE-P-2", amount=Decimal("3000.00"),
                    occurred_at=now - timedelta(minutes=1))

    card = make_card(CardProduct.objects.get(code="STORED"), balance="300.00", member=member,
                     holder_name=member.name, store=store)
    card_debit(card_no=card.card_no, amount=Decimal("20.00"), receipt_no="SCOPE-K-1", store=store)
    card_return_request(card=card, holder_name=member.name, id_type="resident_id", id_number=holder_id,
                        bank_account_name=member.name, bank_account_no="6222021001012345678", bank_name="工商银行",
                        reason="搬家", requested_by=hq_user, store=store)
    blank = Card.objects.filter(location__isnull=True, stock_status=Card.Stock.IN_STOCK).order_by("pk").first()
    transfer_create(from_store=None, to_store=store, selection=card_numbers_parse(blank.card_no), user=hq_user)

    sold_there = Voucher.objects.filter(sale_order__store=store).order_by("pk").first()
    voucher_redeem(code=sold_there.code, quantity=1, receipt_no="SCOPE-V-1", store=own)


@pytest.fixture(scope="module")
def demo_data(django_db_setup, django_db_blocker):
    """A small demo, loaded once for the module in a transaction rolled back at its end (each test runs in a
    savepoint of it)."""
    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", members=30, cards=20, stdout=StringIO())
        _rows_the_demo_does_not_write(Store.objects.get(code=OTHER_STORE), own=Store.objects.get(code=MANAGER_STORE),
                                      hq_user=User.objects.get(username=HQ_USER))
        yield
        transaction.set_rollback(True)


def _lookup(path: str) -> str:
    return f"{path}__in" if path else "pk__in"


def _of_stores(paths, store_ids) -> Q:
    return reduce(operator.or_, (Q(**{_lookup(path): store_ids}) for path in paths))


def _another_stores_row(model, paths, store_ids):
    """A row that names a store on some path and none of the user's stores on any.

    A store's members are also those who bought there (membership.queries.members_in_scope): a member registered
    elsewhere who bought at the manager's store, and the rows of that member, are the manager's.
    """
    rows = model._default_manager.exclude(_of_stores(paths, store_ids))
    bought = [path.removesuffix("registered_store") + "purchases__store" for path in paths
              if path.endswith("registered_store")]
    if bought:
        rows = rows.exclude(_of_stores(bought, store_ids))
    named = reduce(operator.or_, (Q(**{f"{path}__isnull": False}) if path else Q() for path in paths))
    return rows.filter(named).order_by("pk").first()


def _identifying_texts(obj) -> set[str]:
    texts = {str(obj), str(getattr(obj, "code_masked", ""))}
    texts.update(str(field.value_from_object(obj) or "") for field in obj._meta.concrete_fields
                 if field.name in IDENTIFYING_FIELDS)
    for relation in obj._meta.related_objects:
        related = relation.related_model
        if relation.one_to_many and any(field.name == "receipt_no" for field in related._meta.concrete_fields):
            texts.update(related._default_manager.filter(**{relation.field.name: obj}).exclude(receipt_no="")
                         .values_list("receipt_no", flat=True)[:20])
    return {text for text in texts if len(text) >= MIN_TEXT}


def _url(model, pk, page: str) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/{pk}/{page}/"


def _assert_refused(client, url: str, texts: set[str]) -> None:
    response = client.get(url, follow=True)
    if response.redirect_chain:
        assert not response.request["PATH_INFO"].startswith(url.rsplit("/", 2)[0] + "/"), \
            f"{url} redirects to {response.request['PATH_INFO']}, a page of the same object"
    else:
        assert response.status_code in (403, 404), f"{url} answered {response.status_code}, not a refusal"
    content = response.content.decode()
    shown = sorted(text for text in texts if text in content)
    assert not shown, f"{url} is refused but shows {shown}"


REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_a_store_manager_cannot_open_another_stores_objects_in_the_admin(model, demo_data, db, client):
    # given
    manager = User.objects.get(username=MANAGER, groups__name="门店店长")
    store_ids = user_store_ids(manager)
    label = model._meta.label
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/admin/")
    request.user = manager
    may_view = model_admin.has_module_permission(request) and model_admin.has_view_or_change_permission(request)
    store_path = getattr(model_admin, "store_path", None)
    client.force_login(manager)

    if not may_view:
        # (a) then: no object of the model opens, whatever its store
        assert label not in MASTER_DATA, f"store managers cannot read {label}: remove it from MASTER_DATA"
        obj = model._default_manager.order_by("pk").first()
        texts = _identifying_texts(obj) if obj is not None else set()
        for page in ("change", "history"):
            _assert_refused(client, _url(model, obj.pk if obj is not None else 1, page), texts)
    elif store_path is not None:
        # (b) then: another store's object is refused; the manager's own opens
        assert label not in MASTER_DATA, f"{label} is store-scoped: remove it from MASTER_DATA"
        paths = store_paths(store_path)
        other = _another_stores_row(model, paths, store_ids)
        assert other is not None, (
            f"no {label} of a store other than {MANAGER}'s to try: seed one in _rows_the_demo_does_not_write")
        texts = _identifying_texts(other)
        for page in ("change", "history"):
            _assert_refused(client, _url(model, other.pk, page), texts)
        own = model._default_manager.filter(_of_stores(paths, store_ids)).order_by("pk").first()
        if own is not None:
            assert client.get(_url(model, own.pk, "change")).status_code == 200, \
                f"{label}: the manager's own object does not open either, so the refusal above proves nothing"
    else:
        # (c) then: it is master data, by an explicit decision
        assert label in MASTER_DATA, (
            f"store managers can read {label} in the admin and its admin has no store_path. Give its admin a "
            "store_path (stores/admin_base.py: the lookup from a row to its store) if its rows belong to stores; "
            "take "
            "the view permission from 门店店长 (stores/roles.py, with a data migration) if only headquarters may "
            "see it; or, if every store may read all of it, add it to MASTER_DATA in "
            "tests/core/test_admin_scope.py with the reason.")


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_every_admin_object_page_and_its_history_open_for_headquarters(model, demo_data, db, client):
    # given: the superuser, who may open every screen
    client.force_login(User.objects.create_superuser("scope_root", password="x-Unused-42"))
    obj = model._default_manager.order_by("pk").first()
    # then: a change page and a history page answer (models without a history table show the admin's log) ...
    if obj is not None:
        for page in ("change", "history"):
            response = client.get(_url(model, obj.pk, page))
            assert response.status_code in (200, 302), f"{_url(model, obj.pk, page)} answered {response.status_code}"
    # ... and an id of the wrong shape is not found, never a server error
    for page in ("change", "history"):
        response = client.get(_url(model, "not-an-id%00", page), follow=True)
        assert response.status_code in (200, 404), f"{_url(model, 'not-an-id', page)} answered {response.status_code}"

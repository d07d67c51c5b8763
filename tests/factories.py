"""factory_boy factories for the main models, making the same valid states the services make.

Where a model's invariants are made by a service (member numbers with check digits, sealed ID numbers, API key
hashes, balances that must equal their ledger, sale orders checked against the prepaid-card rules), the factory's
`_create` calls that service instead of writing rows around it: the suite runs check_ledgers after every test.

Codes come from sequences that never meet the reference data (DEPT001, SUPER, NORMAL ...), so every factory works
with or without the `reference_stores` fixture; the factories of reference-like models get-or-create on their code,
so `StoreFactory(code="DEPT001")` is the seeded store when there is one.
"""

import itertools
from datetime import date
from decimal import Decimal

import factory
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone
from factory.django import DjangoModelFactory
from stdnum.cn import uscc

from approvals.models import ApprovalPolicy, ApprovalRequest
from approvals.services import approval_request_submit
from approvals.store_closing import STORE_CLOSE
from cards.models import Card, CardLedgerEntry, CardProduct, SaleOrder
from cards.services.ledger import card_post, pin_hash
from cards.services.sales import SaleInput, SaleLineInput, sale_order_create
from core.pii import resident_id_check_digit
from membership.models import EarnRule, Member, PointsEntry, Tier
from membership.services import MemberInput, member_register, points_post
from stores.models import Format, LegalEntity, Region, StaffProfile, Store, Terminal
from stores.services import terminal_create

STAFF_PASSWORD = "pw-for-tests-123"

_resident_serial = itertools.count(1)


def resident_id(birth: date, *, region: str = "500103", gender: str = "F", serial: int | None = None) -> str:
    """A valid resident ID number (GB 11643) for a birth date; odd 17th digit for men."""
    serial = next(_resident_serial) if serial is None else serial
    order = (serial % 400) * 2 + (1 if gender == "M" else 0)
    first17 = f"{region}{birth:%Y%m%d}{order:03d}"[:17]
    return first17 + resident_id_check_digit(first17)


def valid_credit_code(serial: int) -> str:
    """A valid unified social credit code (GB 32100) that none of the reference companies has."""
    body = f"91500000{serial % 10**8:08d}"
    for digit in "0123456789":
        candidate = body + digit
        number = candidate + uscc.calc_check_digit(candidate)
        if uscc.is_valid(number):
            return number
    raise ValueError(f"no valid credit code for {body}")


def permission_named(name: str) -> Permission:
    """The permission named as in has_perm: "stores.approve_store_close"."""
    app_label, codename = name.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


# --- stores --------------------------------------------------------------------------------------------------------


class LegalEntityFactory(DjangoModelFactory):
    class Meta:
        model = LegalEntity
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"LE_T{n}")
    name = factory.Sequence(lambda n: f"测试公司{n}有限公司")
    credit_code = factory.Sequence(valid_credit_code)
    # Without a filing number its stores may not sell or top up cards (cards.rules.issuer_filing_check).
    prepaid_filing_no = factory.Sequence(lambda n: f"渝商预备测{n}号")


class FormatFactory(DjangoModelFactory):
    class Meta:
        model = Format
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"TF{n}")
    name = factory.Sequence(lambda n: f"测试业态{n}")
    legal_entity = factory.SubFactory(LegalEntityFactory)


class ProvinceFactory(DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"TP{n}")
    name = factory.Sequence(lambda n: f"测试省{n}")
    level = Region.Level.PROVINCE
    parent = None


class CityFactory(ProvinceFactory):
    """A city: the level a store's region must be."""

    code = factory.Sequence(lambda n: f"TC{n}")
    name = factory.Sequence(lambda n: f"测试市{n}")
    level = Region.Level.CITY
    parent = factory.SubFactory(ProvinceFactory)


class StoreFactory(DjangoModelFactory):
    """An open store of its own format and city: StoreFactory(), or StoreFactory(format=Format.objects.get(...))."""

    class Meta:
        model = Store
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"TS{n:04d}")
    name = factory.Sequence(lambda n: f"测试门店{n}")
    format = factory.SubFactory(FormatFactory)
    region = factory.SubFactory(CityFactory)
    status = Store.Status.OPEN
    opened_on = date(2020, 1, 1)


class TerminalFactory(DjangoModelFactory):
    """A POS terminal made by terminal_create, so its key is hashed as in production; the key is `.api_key`."""

    class Meta:
        model = Terminal

    store = factory.SubFactory(StoreFactory)
    name = factory.Sequence(lambda n: f"T{n}")

    @classmethod
    def _create(cls, model_class, *, store, name):
        terminal, key = terminal_create(store_code=store.code, name=name)
        # Never stored: terminal_create hands the key out once, as it does to the admin.
        terminal.api_key = key
        return terminal


def terminal_and_key(**fields) -> tuple[Terminal, str]:
    """A terminal and its API key, for a client that calls the POS API as it: terminal_and_key(store=dept001)."""
    terminal = TerminalFactory(**fields)
    return terminal, terminal.api_key


class StaffFactory(DjangoModelFactory):
    """A staff user with a StaffProfile, in a role group and/or holding permissions.

    StaffFactory(group="门店店长", stores=[dept001]); StaffFactory(scope=StaffProfile.Scope.HQ,
    permissions=["stores.approve_store_close"]). Logs in with STAFF_PASSWORD.
    """

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    password = STAFF_PASSWORD
    is_staff = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return model_class._default_manager.create_user(*args, **kwargs)

    @factory.post_generation
    def scope(user, create, extracted, **kwargs):
        """HQ sees every store; STORES (the default) only the stores given."""
        StaffProfile.objects.create(user=user, scope=extracted or StaffProfile.Scope.STORES)

    @factory.post_generation
    def stores(user, create, extracted, **kwargs):
        user.staff_profile.stores.set(extracted or ())

    @factory.post_generation
    def group(user, create, extracted, **kwargs):
        """The name of a role group of stores.roles ("总部管理员", "服务台" ...)."""
        if extracted:
            user.groups.add(Group.objects.get(name=extracted))

    @factory.post_generation
    def permissions(user, create, extracted, **kwargs):
        """Permissions granted to the user directly, named "app_label.codename"."""
        if extracted:
            user.user_permissions.add(*(permission_named(name) for name in extracted))


# --- approvals -----------------------------------------------------------------------------------------------------


class ApprovalPolicyFactory(DjangoModelFactory):
    """One level of the policy table: which action, from which amount, approved by which permission.

    ApprovalPolicyFactory(action=..., min_amount=Decimal("1000.00"), permission="stores.delete_store").
    """

    class Meta:
        model = ApprovalPolicy

    class Params:
        permission = "stores.approve_store_close"

    action = factory.Sequence(lambda n: f"tests.action_{n}")
    min_amount = None
    approver_permission = factory.LazyAttribute(lambda policy: permission_named(policy.permission))
    hq_only = True
    is_active = True


class ApprovalRequestFactory(DjangoModelFactory):
    """A request submitted through approval_request_submit: pending when a policy applies, else carried out.

    By default a request by an HQ user to close a new store today, as store_close_request asks it; for another
    action give action, subject, payload and store (None when the subject is not a store).
    """

    class Meta:
        model = ApprovalRequest

    action = STORE_CLOSE
    subject = factory.SubFactory(StoreFactory)
    store = factory.SelfAttribute("subject")
    requested_by = factory.SubFactory(StaffFactory, scope=StaffProfile.Scope.HQ)
    reason = factory.Sequence(lambda n: f"测试申请{n}")
    amount = None
    payload = factory.LazyFunction(lambda: {"closed_on": timezone.localdate().isoformat()})

    @classmethod
    def _create(cls, model_class, **fields):
        return approval_request_submit(**fields)


# --- membership ----------------------------------------------------------------------------------------------------


class TierFactory(DjangoModelFactory):
    """An earned tier ranked above the reference ones and out of reach, so it changes no member's tier unless
    a test sets its threshold; TierFactory(paid=True) for a paid tier."""

    class Meta:
        model = Tier
        django_get_or_create = ("code",)

    class Params:
        paid = factory.Trait(kind=Tier.Kind.PAID, fee=Decimal("999.00"), term_months=12)

    code = factory.Sequence(lambda n: f"TIER{n}")
    name = factory.Sequence(lambda n: f"测试等级{n}")
    kind = Tier.Kind.EARNED
    rank = factory.Sequence(lambda n: 100 + n)
    threshold = Decimal("100000000.00")


class EarnRuleFactory(DjangoModelFactory):
    """How a format's purchases earn points: EarnRuleFactory(format=Format.objects.get(code="DEPT"))."""

    class Meta:
        model = EarnRule
        django_get_or_create = ("format",)

    format = factory.SubFactory(FormatFactory)
    amount_per_point = Decimal("1.00")
    pending_days = 0


class MemberFactory(DjangoModelFactory):
    """A member registered through member_register, as the desk does: a member number with its check digit,
    an ID number sealed by core.pii, the registration event.

    Takes any MemberInput field plus store, registered_by, channel and tier; points=N posts an opening balance
    through the points ledger. MemberFactory(with_resident_id=True) registers with an ID card instead of a phone.
    Refusals of the service (MemberInvalid, MemberAlreadyRegistered) reach the caller.
    """

    class Meta:
        model = Member
        skip_postgeneration_save = True

    class Params:
        with_resident_id = factory.Trait(
            phone="", id_type=Member.IdType.RESIDENT_ID,
            id_number=factory.LazyFunction(lambda: resident_id(date(1980, 1, 1))),
        )

    name = factory.Sequence(lambda n: f"测试会员{n}")
    phone = factory.Sequence(lambda n: f"139{n % 10**8:08d}")
    store = None
    registered_by = None
    channel = Member.Channel.DESK
    tier = None

    @classmethod
    def _create(cls, model_class, *, store, registered_by, channel, tier, **fields):
        return member_register(
            data=MemberInput(**fields), store=store, registered_by=registered_by, channel=channel, tier=tier
        )

    @factory.post_generation
    def points(member, create, extracted, **kwargs):
        if create and extracted:
            points_post(member=member, points=extracted, kind=PointsEntry.Kind.ADJUST, store=member.registered_store,
                        reason="test opening balance")


# --- cards ---------------------------------------------------------------------------------------------------------


class CardProductFactory(DjangoModelFactory):
    """A bearer product valid three years, at most 1,000.00; CardProductFactory(registered=True) for a reloadable
    registered one of 5,000.00 without expiry (the prepaid card rules' bounds)."""

    class Meta:
        model = CardProduct
        django_get_or_create = ("code",)

    class Params:
        registered = factory.Trait(kind=CardProduct.Kind.REGISTERED, reloadable=True, max_balance=Decimal("5000.00"))

    code = factory.Sequence(lambda n: f"PROD{n}")
    name = factory.Sequence(lambda n: f"测试卡{n}")
    kind = CardProduct.Kind.BEARER
    max_balance = Decimal("1000.00")
    face_values = factory.LazyFunction(lambda: ["100.00", "500.00"])
    validity_months = factory.LazyAttribute(
        lambda product: None if product.kind == CardProduct.Kind.REGISTERED else 36
    )


class CardFactory(DjangoModelFactory):
    """A sold, active card whose balance is loaded through the ledger (card_post), so check_ledgers holds.

    CardFactory(product=..., balance="500.00", pin="123456", status=Card.Status.FROZEN, sold_store=dept001):
    the status is set after the load, as if the card had been used and then changed.
    """

    class Meta:
        model = Card

    card_no = factory.Sequence(lambda n: f"9{n + 1:014d}")
    product = factory.SubFactory(CardProductFactory)
    stock_status = Card.Stock.SOLD
    sold_store = None
    balance = Decimal("0.00")
    status = Card.Status.ACTIVE
    pin = None

    @classmethod
    def _create(cls, model_class, *, balance, status, pin, **fields):
        card = super()._create(
            model_class, status=Card.Status.ACTIVE, pin_hash=pin_hash(fields["card_no"], pin) if pin else "", **fields
        )
        amount = Decimal(str(balance))
        if amount:
            card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=amount, store=card.sold_store,
                      reason="test load")
        if status != Card.Status.ACTIVE:
            model_class.objects.filter(pk=card.pk).update(status=status)
            card.status = status
        return card


class StockCardFactory(DjangoModelFactory):
    """An unsold card in stock at a store (location None: headquarters), inactive with no balance."""

    class Meta:
        model = Card

    card_no = factory.Sequence(lambda n: f"62{n + 1:011d}")
    product = factory.SubFactory(CardProductFactory)
    status = Card.Status.INACTIVE
    stock_status = Card.Stock.IN_STOCK
    location = factory.SubFactory(StoreFactory)
    face_value = Decimal("500.00")


class SaleOrderFactory(DjangoModelFactory):
    """A draft walk-in sale of one bearer card in stock at the store, written and checked by sale_order_create.

    SaleOrderFactory(store=dept001, created_by=clerk, amount=Decimal("500.00")); payments=[...] to record them.
    """

    class Meta:
        model = SaleOrder

    store = factory.SubFactory(StoreFactory)
    created_by = factory.SubFactory(StaffFactory, scope=StaffProfile.Scope.HQ)
    card = factory.SubFactory(StockCardFactory, location=factory.SelfAttribute("..store"))
    amount = Decimal("500.00")
    payments = None

    @classmethod
    def _create(cls, model_class, *, store, created_by, card, amount, payments):
        data = SaleInput(store=store, lines=[SaleLineInput(first=card.card_no, amount=amount)])
        return sale_order_create(data=data, created_by=created_by, payments=payments)

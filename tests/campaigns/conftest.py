"""Fixtures for coupons, named for the state they create; factories for campaigns' models.

A template is written as staff leave it once approved (active); coupons are issued through
campaigns.services.coupons_issue, so the template's counters stay what check_ledgers proves.
"""

from datetime import timedelta
from decimal import Decimal

import factory
import pytest
from django.test import Client
from django.utils import timezone
from factory.django import DjangoModelFactory

from campaigns.models import Coupon, CouponBatch, CouponSku, CouponTemplate
from campaigns.services import coupons_issue
from stores.models import Format, Store
from stores.services import terminal_create
from tests.factories import StaffFactory
from tests.membership.conftest import register


class CouponTemplateFactory(DjangoModelFactory):
    """An active template: CouponTemplateFactory(kind=..., formats=["DEPT"], stores=[store], skus=["690..."])."""

    class Meta:
        model = CouponTemplate
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"CT{n:04d}")
    name = factory.Sequence(lambda n: f"测试券{n}")
    kind = CouponTemplate.Kind.AMOUNT_OFF
    status = CouponTemplate.Status.ACTIVE
    amount = Decimal("10.00")

    @factory.post_generation
    def formats(template, create, extracted, **kwargs):
        """Format codes ("DEPT") or Format rows; none: every format."""
        template.formats.set([Format.objects.get(code=item) if isinstance(item, str) else item
                              for item in extracted or ()])

    @factory.post_generation
    def stores(template, create, extracted, **kwargs):
        """Store codes ("DEPT001") or Store rows; none: every store of the formats."""
        template.stores.set([Store.objects.get(code=item) if isinstance(item, str) else item
                             for item in extracted or ()])

    @factory.post_generation
    def skus(template, create, extracted, **kwargs):
        CouponSku.objects.bulk_create([CouponSku(template=template, sku=sku) for sku in extracted or ()])


def coupon_issue(template: CouponTemplate, member=None) -> Coupon:
    """One coupon of the template, to the member or as a bulk code anyone may use, issued by the service."""
    if member is not None:
        batch = coupons_issue(template=template, member_ids=[member.pk], channel=CouponBatch.Channel.MEMBER_LIST)
    else:
        batch = coupons_issue(template=template, quantity=1, channel=CouponBatch.Channel.BULK)
    return Coupon.objects.get(batch=batch)


def coupons_issued(template: CouponTemplate, count: int) -> list[Coupon]:
    """`count` bulk codes of the template."""
    batch = coupons_issue(template=template, quantity=count, channel=CouponBatch.Channel.BULK)
    return list(Coupon.objects.filter(batch=batch).order_by("pk"))


def till_client(store_code: str, name: str) -> Client:
    """A test client that calls the POS API as a new terminal of the store."""
    _terminal, key = terminal_create(store_code=store_code, name=name)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def coupon_template_dept_threshold(reference_stores) -> CouponTemplate:
    """满200减30 at the stores of the DEPT format (百货); a member may hold three."""
    return CouponTemplateFactory(code="DEPT200", name="百货满200减30", kind=CouponTemplate.Kind.THRESHOLD,
                                 threshold=Decimal("200.00"), amount=Decimal("30.00"), formats=["DEPT"],
                                 per_member_limit=3)


@pytest.fixture
def coupon_template_super_amount_off(reference_stores) -> CouponTemplate:
    """减10元 at SUPER001 only."""
    return CouponTemplateFactory(code="SUPER10", name="超市10元券", amount=Decimal("10.00"), stores=["SUPER001"])


@pytest.fixture
def coupon_template_claimable(reference_stores) -> CouponTemplate:
    """减20元 anywhere, claimed with the poster code SPRING20."""
    return CouponTemplateFactory(code="SPRING", name="春季20元券", amount=Decimal("20.00"), claim_code="SPRING20",
                                 valid_days=30)


@pytest.fixture
def coupon_member(dept001):
    """李建国, registered at DEPT001."""
    return register(name="李建国", phone="13800138000", store=dept001)


@pytest.fixture
def other_member(dept001):
    return register(name="王芳", phone="13700137000", store=dept001)


@pytest.fixture
def coupon_issued_to_member(coupon_template_dept_threshold, coupon_member) -> Coupon:
    """李建国's 满200减30 coupon for DEPT stores, open."""
    return coupon_issue(coupon_template_dept_threshold, coupon_member)


@pytest.fixture
def coupon_expired(coupon_template_dept_threshold, coupon_member) -> Coupon:
    """李建国's 满200减30 coupon whose validity ended yesterday (the nightly job has not closed it yet)."""
    coupon = coupon_issue(coupon_template_dept_threshold, coupon_member)
    Coupon.objects.filter(pk=coupon.pk).update(valid_until=timezone.now() - timedelta(days=1))
    coupon.refresh_from_db()
    return coupon


@pytest.fixture
def super001_api(super001) -> Client:
    """A test client that calls the API as terminal S1 of SUPER001."""
    return till_client("SUPER001", "S1")


@pytest.fixture
def dept001_clerk(dept001):
    """A service-desk clerk of DEPT001."""
    return StaffFactory(username="dept001_coupon_desk", group="服务台", stores=[dept001])


@pytest.fixture
def desk(client, dept001_clerk):
    """A test client logged in as the service-desk clerk of DEPT001, reading English."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(dept001_clerk)
    return client

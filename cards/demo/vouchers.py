"""Demo pickup vouchers: a supplier, a product and an issued batch, for `seed_demo` (safe to run twice).

The batch goes through approval like any other when a second person may approve it (the demo HQ approver);
on a database without one its codes are generated directly, as demo data. The sale of some of its vouchers to
a company is demo data of the sale orders.
"""

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from approvals.services import approval_request_approve
from cards.models import Supplier, VoucherBatch, VoucherProduct
from cards.services import vouchers
from stores.queries import user_is_hq

DEMO_SUPPLIER = "DEMOSUP01"
DEMO_PRODUCT = "JLY-OIL-5L"
DEMO_NOTE = "演示数据：金龙鱼食用油提货券"
_DEMO_NOTES = (DEMO_NOTE, "demo: 金龙鱼食用油提货券")  # the batch of a demo loaded before its note was Chinese
DEMO_APPROVER = "hq_approver"
APPROVE_PERMISSION = "cards.approve_voucher_batch"


@transaction.atomic
def seed_voucher_demo(*, user, approver=None) -> dict:
    """Create the demo supplier, product and an issued batch of 50 vouchers of 2 units; return what exists."""
    supplier, supplier_created = Supplier.objects.get_or_create(code=DEMO_SUPPLIER, defaults={
        "name": "益海嘉里食品营销有限公司", "contact_name": "王经理", "contact_phone": "023-63001234",
        "tax_no": "91310000607317950L", "bank": "中国工商银行上海分行", "bank_account_no": "1001202309000012345",
    })
    product, product_created = VoucherProduct.objects.get_or_create(code=DEMO_PRODUCT, defaults={
        "name": "金龙鱼食用油 5L", "sku": "6948195800019", "description": "金龙鱼黄金比例食用调和油 5L",
        "unit": "桶", "supplier": supplier, "settlement_price": Decimal("58.00"),
    })
    batch = VoucherBatch.objects.filter(product=product, note__in=_DEMO_NOTES).order_by("pk").first()
    batch_created = batch is None
    if batch_created:
        batch = vouchers.voucher_batch_create(
            product=product, quantity=50, units=2, price=Decimal("138.00"),
            expires_on=timezone.localdate() + timedelta(days=365), requested_by=user, note=DEMO_NOTE,
        )
        approver = approver or _demo_approver(exclude=user)
        if approver is not None:
            request = vouchers.voucher_batch_submit(batch=batch, requested_by=user,
                                                    reason="演示数据：金龙鱼食用油提货券 50 张，每张 2 桶")
            approval_request_approve(approval_request=request, approver=approver, comment="演示数据")
        else:
            batch = VoucherBatch.objects.select_for_update().get(pk=batch.pk)
            vouchers.voucher_batch_generate(batch=batch, actor=user, reason="演示数据：已生成提货券")
        batch.refresh_from_db()
    return {"supplier": supplier, "product": product, "batch": batch, "created": batch_created,
            "supplier_created": supplier_created, "product_created": product_created,
            "vouchers": batch.vouchers.count()}


def _demo_approver(*, exclude):
    candidate = get_user_model().objects.filter(username=DEMO_APPROVER, is_active=True).exclude(pk=exclude.pk).first()
    if candidate is not None and user_is_hq(candidate) and candidate.has_perm(APPROVE_PERMISSION):
        return candidate
    return None

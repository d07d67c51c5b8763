from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cards.models.products import MONEY
from core.history import AuditHistory


class SaleOrder(models.Model):
    """A sale (售卡) or top-up of cards, walk-in at a desk or to a corporate group buyer, with its buyer record.

    The buyer's identity is the real-name record of DESIGN section 7: kept at least five years, never purged.
    """

    class Kind(models.TextChoices):
        SALE = "sale", _("card sale")
        TOP_UP = "top_up", _("top-up")

    class Channel(models.TextChoices):
        WALK_IN = "walk_in", _("walk-in (散客)")
        GROUP = "group", _("corporate group (团购)")

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        PENDING = "pending", _("waiting for approval")
        APPROVED = "approved", _("approved, waiting for payment")
        COMPLETED = "completed", _("paid, cards active")
        REJECTED = "rejected", _("rejected")
        CANCELLED = "cancelled", _("cancelled")

    class BuyerType(models.TextChoices):
        PERSON = "person", _("person")
        COMPANY = "company", _("company")

    class IdType(models.TextChoices):
        NONE = "", _("none")
        RESIDENT_ID = "resident_id", _("resident ID card")
        PASSPORT = "passport", _("passport")
        HK_MACAU = "hk_macau", _("Hong Kong/Macau permit")
        TAIWAN = "taiwan", _("Taiwan permit")

    order_no = models.CharField(_("order number"), max_length=20, unique=True)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.SALE)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("selling store")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    remote = models.BooleanField(
        _("remote or online"), default=False, help_text=_("Bought remotely or online: bank transfer only."),
    )
    buyer_type = models.CharField(_("buyer"), max_length=8, choices=BuyerType.choices, default=BuyerType.PERSON)
    buyer_name = models.CharField(_("buyer name or company name"), max_length=100, blank=True)
    buyer_id_type = models.CharField(_("buyer ID type"), max_length=12, choices=IdType.choices, blank=True)
    buyer_id_digest = models.CharField(_("buyer ID digest"), max_length=64, blank=True, db_index=True,
                                       editable=False)
    buyer_id_sealed = models.TextField(_("buyer ID (sealed)"), blank=True, editable=False)
    buyer_id_masked = models.CharField(_("buyer ID"), max_length=32, blank=True, editable=False)
    buyer_id_name = models.CharField(
        _("name on the buyer ID"), max_length=100, blank=True, editable=False,
        help_text=_("The buyer's name the ID was recorded with: another name or ID type asks for the ID again."),
    )
    buyer_credit_code = models.CharField(
        _("unified social credit code"), max_length=18, blank=True, db_index=True,
    )
    buyer_phone = models.CharField(_("buyer phone"), max_length=20, blank=True)
    buyer_address = models.CharField(_("buyer address"), max_length=200, blank=True)
    member = models.ForeignKey(
        "membership.Member", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("member"), help_text=_("Registered cards are bound to this member."),
    )
    agent_name = models.CharField(_("agent name"), max_length=100, blank=True)
    agent_id_type = models.CharField(_("agent ID type"), max_length=12, choices=IdType.choices, blank=True)
    agent_id_digest = models.CharField(_("agent ID digest"), max_length=64, blank=True, editable=False)
    agent_id_sealed = models.TextField(_("agent ID (sealed)"), blank=True, editable=False)
    agent_id_masked = models.CharField(_("agent ID"), max_length=32, blank=True, editable=False)
    agent_id_name = models.CharField(
        _("name on the agent ID"), max_length=100, blank=True, editable=False,
        help_text=_("The agent's name the ID was recorded with: another name or ID type asks for the ID again."),
    )
    agent_phone = models.CharField(_("agent phone"), max_length=20, blank=True)
    face_total = models.DecimalField(_("loaded onto cards"), **MONEY, default=Decimal("0.00"))
    voucher_total = models.DecimalField(_("pickup vouchers"), **MONEY, default=Decimal("0.00"))
    discount = models.DecimalField(_("discount"), **MONEY, default=Decimal("0.00"))
    rebate = models.DecimalField(
        _("rebate"), **MONEY, default=Decimal("0.00"),
        help_text=_("Paid back to a corporate buyer after the sale; recorded, not taken off the price."),
    )
    amount_due = models.DecimalField(_("amount due"), **MONEY, default=Decimal("0.00"))
    invoice_title = models.CharField(_("invoice title"), max_length=100, blank=True)
    invoice_tax_no = models.CharField(
        _("invoice taxpayer number"), max_length=20, blank=True, db_index=True,
        help_text=_("A buyer invoiced to a company counts as a company for the non-cash rule; orders with the same "
                    "taxpayer number are added up for the limits."),
    )
    invoice_item_code = models.CharField(
        _("invoice item code"), max_length=10, default="601",
        help_text=_("601 预付卡销售和充值: a not-taxable general invoice (税务总局公告2016年第53号)."),
    )
    split_suspected = models.BooleanField(
        _("looks split"), default=False,
        help_text=_("This order stays under a limit that it passes added to its buyer's earlier orders in the rules' "
                    "window."),
    )
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    completed_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("card sale order")
        verbose_name_plural = _("card sale orders")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["store", "created_at"], name="card_sale_store_time")]
        constraints = [
            models.CheckConstraint(condition=models.Q(discount__gte=0), name="card_sale_discount_not_negative"),
            models.CheckConstraint(condition=models.Q(rebate__gte=0), name="card_sale_rebate_not_negative"),
            models.CheckConstraint(condition=models.Q(amount_due__gte=0), name="card_sale_due_not_negative"),
        ]

    def __str__(self) -> str:
        return self.order_no


class SaleLine(models.Model):
    order = models.ForeignKey(SaleOrder, on_delete=models.CASCADE, related_name="lines", verbose_name=_("order"))
    card = models.ForeignKey("cards.Card", on_delete=models.PROTECT, related_name="+", verbose_name=_("card"))
    amount = models.DecimalField(_("load amount"), **MONEY)

    class Meta:
        verbose_name = _("card in an order")
        verbose_name_plural = _("cards in an order")
        constraints = [
            models.UniqueConstraint(fields=["order", "card"], name="card_sale_line_unique"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="card_sale_line_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.card_id} {self.amount}"


class SalePayment(models.Model):
    class Method(models.TextChoices):
        CASH = "cash", _("cash")
        BANK_TRANSFER = "bank_transfer", _("bank transfer")
        WECHAT = "wechat", _("WeChat Pay")
        ALIPAY = "alipay", _("Alipay")
        UNIONPAY = "unionpay", _("UnionPay card")
        OTHER = "other", _("other")

    order = models.ForeignKey(SaleOrder, on_delete=models.CASCADE, related_name="payments", verbose_name=_("order"))
    method = models.CharField(_("method"), max_length=14, choices=Method.choices)
    amount = models.DecimalField(_("amount"), **MONEY)
    reference = models.CharField(_("reference"), max_length=64, blank=True)
    payer_account_name = models.CharField(_("payer account name"), max_length=100, blank=True)
    payer_account_no = models.CharField(_("payer account number"), max_length=40, blank=True)
    payee_account_name = models.CharField(_("payee account name"), max_length=100, blank=True)
    payee_account_no = models.CharField(_("payee account number"), max_length=40, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("payment line")
        verbose_name_plural = _("payment lines")
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="card_sale_payment_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.get_method_display()} {self.amount}"


class CardReturn(models.Model):
    """A card return (退卡): ID checked, logged, approved, paid out to a bank account in the holder's name."""

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting for approval")
        PAID = "paid", _("approved and paid out")
        REJECTED = "rejected", _("rejected")
        CANCELLED = "cancelled", _("cancelled")

    card = models.ForeignKey("cards.Card", on_delete=models.PROTECT, related_name="returns", verbose_name=_("card"))
    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="+", verbose_name=_("store"))
    amount = models.DecimalField(_("amount"), **MONEY)
    holder_name = models.CharField(_("holder name"), max_length=100)
    holder_id_type = models.CharField(_("holder ID type"), max_length=12, choices=SaleOrder.IdType.choices)
    holder_id_digest = models.CharField(_("holder ID digest"), max_length=64, editable=False)
    holder_id_sealed = models.TextField(_("holder ID (sealed)"), editable=False)
    holder_id_masked = models.CharField(_("holder ID"), max_length=32, editable=False)
    bank_account_name = models.CharField(_("bank account name"), max_length=100)
    bank_account_no = models.CharField(_("bank account number"), max_length=40)
    bank_name = models.CharField(_("bank"), max_length=100)
    reason = models.CharField(_("reason"), max_length=200)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    paid_at = models.DateTimeField(_("paid out at"), null=True, blank=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("card return")
        verbose_name_plural = _("card returns")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="card_return_amount_not_negative"),
            models.UniqueConstraint(fields=["card"], condition=models.Q(status="pending"),
                                    name="card_return_one_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.card_id} {self.amount}"

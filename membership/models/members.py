from decimal import Decimal

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from core.history import AuditHistory
from core.models import LedgerEntry, ledger_field
from core.pii import mask_phone


class Tier(models.Model):
    """A member tier: earned by spend (普卡 ... 铂金卡) or paid for (Plus)."""

    class Kind(models.TextChoices):
        EARNED = "earned", _("earned")
        PAID = "paid", _("paid")

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=50)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.EARNED)
    rank = models.PositiveSmallIntegerField(
        _("rank"), default=0, help_text=_("Higher ranks are better tiers; the lowest earned tier is the default.")
    )
    threshold = models.DecimalField(
        _("qualifying spend"), max_digits=14, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("Earned tiers: spend across all formats over the qualifying window that reaches this tier."),
    )
    points_multiplier = models.DecimalField(
        _("points multiplier"), max_digits=4, decimal_places=2, default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("1.00"))],
        help_text=_("Points earned are multiplied by this (1.5 gives 150 points instead of 100)."),
    )
    discount_text = models.CharField(
        _("discount"), max_length=100, blank=True, help_text=_("The member discount as shown to staff, e.g. 95折.")
    )
    discount_rate = models.DecimalField(
        _("discount rate"), max_digits=5, decimal_places=4, default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.9999"))],
        help_text=_("0.05 for 5 percent off: the discount a till gives the tier's members (sent to the POS with "
                    "the member lookup); 0 for none."),
    )
    benefits = models.TextField(_("benefits"), blank=True)
    grace_days = models.PositiveSmallIntegerField(
        _("grace period (days)"), default=90,
        help_text=_("Earned tiers: days a member keeps this tier after falling below its threshold."),
    )
    fee = models.DecimalField(
        _("fee"), max_digits=14, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0.00"))], help_text=_("Paid tiers: the price of one term."),
    )
    term_months = models.PositiveSmallIntegerField(
        _("term (months)"), default=12, validators=[MinValueValidator(1)], help_text=_("Paid tiers: one term."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        ordering = ["kind", "rank"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def default(cls) -> "Tier":
        return cls.objects.filter(kind=cls.Kind.EARNED, is_active=True).order_by("rank").first()


class Partner(models.Model):
    """A partner that brings members (联名会员渠道): a bank, a telecom, a car brand.

    Members who register with its registration code (at the desk, or in a partner's file) are attributed
    to it (`Member.partner`); the partner page counts those who made a first purchase and their sales.
    """

    class Kind(models.TextChoices):
        BANK = "bank", pgettext_lazy("partner", "bank")
        TELECOM = "telecom", _("telecom operator")
        CAR_BRAND = "car_brand", _("car brand")
        OTHER = "other", _("other")

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.OTHER)
    registration_code = models.CharField(
        _("registration code"), max_length=20, unique=True,
        help_text=_("The code a new member gives at registration to be attributed to this partner."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    history = AuditHistory()

    class Meta:
        verbose_name = _("partner")
        verbose_name_plural = _("partners")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Member(models.Model):
    """One person across every format (会员)."""

    class Gender(models.TextChoices):
        MALE = "M", _("male")
        FEMALE = "F", _("female")
        UNKNOWN = "U", _("unknown")

    class IdType(models.TextChoices):
        RESIDENT_ID = "resident_id", _("resident ID card")
        PASSPORT = "passport", _("passport")
        HK_MACAU_PERMIT = "hk_macau", _("Hong Kong/Macau travel permit")
        TAIWAN_PERMIT = "taiwan", _("Taiwan travel permit")
        NONE = "none", _("none")

    class ContactChannel(models.TextChoices):
        SMS = "sms", _("SMS")
        CALL = "call", _("phone call")
        MAIL = "mail", _("paper mail")
        WECHAT = "wechat", _("WeChat")
        NONE = "none", _("no contact")

    class Channel(models.TextChoices):
        DESK = "desk", _("service desk")
        POS = "pos", _("POS")
        APP = "app", _("app")
        IMPORT = "import", _("import")
        PARTNER = "partner", _("partner")

    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        FROZEN = "frozen", _("frozen")
        MERGED = "merged", _("merged")
        CLOSED = "closed", _("closed")

    member_no = models.CharField(
        _("member number"), max_length=12, editable=False,
        help_text=_("12 digits starting with 8; the last digit is a Luhn check digit."),
    )
    name = models.CharField(_("name"), max_length=50)
    name_initials = models.CharField(
        _("pinyin initials"), max_length=50, blank=True, editable=False,
        help_text=_("张秀英 is zxy: clerks find members by these."),
    )
    gender = models.CharField(_("gender"), max_length=1, choices=Gender.choices, default=Gender.UNKNOWN)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    id_type = models.CharField(_("ID type"), max_length=12, choices=IdType.choices, default=IdType.NONE)
    id_number_digest = models.CharField(
        _("ID number digest"), max_length=64, null=True, blank=True, editable=False,
        help_text=_("Keyed digest for exact lookup; the number itself is not stored readable."),
    )
    id_number_sealed = models.TextField(_("ID number (encrypted)"), blank=True, editable=False)
    id_number_masked = models.CharField(_("ID number"), max_length=30, blank=True, editable=False)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    family_phone = models.CharField(
        _("family contact phone"), max_length=20, blank=True,
        help_text=_("A relative to call, for members without a phone of their own."),
    )
    address = models.CharField(_("address"), max_length=200, blank=True)
    contact_channel = models.CharField(
        _("preferred contact"), max_length=10, choices=ContactChannel.choices, default=ContactChannel.SMS
    )
    marketing_consent = models.BooleanField(_("marketing consent"), default=False)
    marketing_consent_at = models.DateTimeField(_("consent given at"), null=True, blank=True)
    tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, related_name="members", verbose_name=_("tier"), db_index=False
    )
    tier_downgrade_on = models.DateField(
        _("downgrade due on"), null=True, blank=True, editable=False,
        help_text=_("Set while spend is below the tier's threshold: the grace period ends on this day."),
    )
    paid_tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, null=True, blank=True, related_name="paid_members",
        verbose_name=_("paid tier"), db_index=False, editable=False,
    )
    paid_tier_until = models.DateField(_("paid tier until"), null=True, blank=True, editable=False)
    points = models.IntegerField(
        _("points"), default=0, editable=False, help_text=_("Kept equal to the sum of the points ledger.")
    )
    points_debt = models.IntegerField(
        _("points owed"), default=0, db_default=0, editable=False,
        help_text=_("Points taken back by returns after they were spent; paid off by later earnings."),
    )
    registered_store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="members",
        verbose_name=_("registering store"), db_index=False,
    )
    registered_channel = models.CharField(
        _("registration channel"), max_length=10, choices=Channel.choices, default=Channel.DESK
    )
    partner = models.ForeignKey(
        Partner, on_delete=models.PROTECT, null=True, blank=True, related_name="members",
        verbose_name=_("partner"), help_text=_("The partner channel the member registered through."),
    )
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("registered by"), db_index=False,
    )
    registered_at = models.DateTimeField(_("registered at"), default=timezone.now, db_index=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    merged_into = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="merged_members",
        verbose_name=_("merged into"), db_index=False,
    )
    notes = models.TextField(_("notes"), blank=True)
    tags = models.ManyToManyField("Tag", through="MemberTag", related_name="members", verbose_name=_("tags"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = AuditHistory(
        excluded_fields=["points", "points_debt", "updated_at", "id_number_sealed", "id_number_digest"]
    )

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["-registered_at", "-pk"]
        permissions = [
            ("use_service_desk", _("Can use the service desk")),
            ("reveal_personal_data", _("Can see full ID numbers and phone numbers")),
            ("export_personal_data", _("Can export members with personal data")),
            ("merge_member", _("Can merge members")),
            ("approve_member_merge", _("Can approve merging members with different ID numbers")),
            ("adjust_points", _("Can ask for a manual points adjustment")),
            ("approve_points_adjustment", _("Can approve manual points adjustments")),
            ("redeem_gift", _("Can give gifts for points")),
            ("sell_paid_tier", _("Can sell and renew paid tiers")),
        ]
        # Explicit indexes rather than db_index/unique on the columns: PostgreSQL would add a second
        # LIKE index to each, and every index slows a migration of millions of rows.
        indexes = [
            models.Index(fields=["phone"], name="member_phone"),
            models.Index(fields=["family_phone"], name="member_family_phone"),
            models.Index(
                fields=["merged_into"], name="member_merged_into", condition=models.Q(merged_into__isnull=False)
            ),
            models.Index(fields=["name", "birth_date"], name="member_name_birth"),
            # Pattern ops so that a prefix search (zx -> zxy) uses the index on PostgreSQL.
            models.Index(fields=["name_initials"], name="member_initials", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["registered_store", "registered_at"], name="member_store_registered"),
            models.Index(fields=["tier"], name="member_tier"),
            models.Index(
                fields=["paid_tier_until"], name="member_paid_tier_until", condition=models.Q(paid_tier__isnull=False)
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["member_no"], name="member_no_unique"),
            models.CheckConstraint(condition=models.Q(points__gte=0), name="member_points_not_negative"),
            models.CheckConstraint(condition=models.Q(points_debt__gte=0), name="member_points_debt_not_negative"),
            # One living member per ID number; a merged record gives its number to the survivor.
            models.UniqueConstraint(
                fields=["id_number_digest"],
                condition=models.Q(id_number_digest__isnull=False) & ~models.Q(status="merged"),
                name="member_id_number_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(status="merged", merged_into__isnull=False)
                | (~models.Q(status="merged") & models.Q(merged_into__isnull=True)),
                name="member_merged_has_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_no} {self.name}"

    @property
    def phone_masked(self) -> str:
        return mask_phone(self.phone)

    @property
    def family_phone_masked(self) -> str:
        return mask_phone(self.family_phone)

    @property
    def age(self) -> int | None:
        if not self.birth_date:
            return None
        today = timezone.localdate()
        before_birthday = (today.month, today.day) < (self.birth_date.month, self.birth_date.day)
        return today.year - self.birth_date.year - before_birthday


class MemberIdentity(models.Model):
    """A number the member has in another system: a legacy member system or a format's POS/CRM."""

    class Kind(models.TextChoices):
        LEGACY = "legacy", _("legacy member number")
        FORMAT = "format", _("format system id")

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="identities", verbose_name=_("member"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.LEGACY)
    source = models.CharField(
        _("source"), max_length=40, help_text=_("The legacy system or format the number comes from, e.g. DEPT_CRM.")
    )
    external_no = models.CharField(_("number there"), max_length=64)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("member identity")
        verbose_name_plural = _("member identities")
        ordering = ["source", "external_no"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_no"], name="identity_source_number_unique")
        ]
        indexes = [models.Index(fields=["external_no"], name="identity_external_no")]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_no}"


class MemberCard(models.Model):
    """A physical member card (会员卡) that identifies the member at a till."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        LOST = "lost", _("reported lost")
        RETIRED = "retired", _("retired")

    card_no = models.CharField(_("member card number"), max_length=32, unique=True)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="cards", verbose_name=_("member"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)
    issued_store = models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("issuing store"),
    )
    history = AuditHistory()

    class Meta:
        verbose_name = _("member card")
        verbose_name_plural = _("member cards")
        ordering = ["card_no"]

    def __str__(self) -> str:
        return self.card_no


class PointsEntry(LedgerEntry):
    """One movement of a member's points; append-only (DESIGN section 3)."""

    class Kind(models.TextChoices):
        MIGRATION = "migration", _("opening balance from migration")
        EARN = "earn", _("earned")
        REDEEM = "redeem", _("redeemed")
        CASH_OUT = "cash_out", _("turned into cash at a till")
        GIFT = "gift", _("exchanged for a gift")
        ADJUST = "adjust", _("manual adjustment")
        EXPIRE = "expire", _("expired")
        MERGE_IN = "merge_in", _("moved in by a merge")
        MERGE_OUT = "merge_out", _("moved out by a merge")
        REVERSAL = "reversal", _("reversal")

    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="points_entries", verbose_name=_("member"), db_index=False
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    points = models.IntegerField(_("points"), help_text=_("Positive adds, negative takes away."))
    balance_after = models.IntegerField(_("balance after"))
    # This ledger's store and time columns are indexed, the other ledgers' are not; its legal entity's help text
    # says what the company did with points.
    store = ledger_field(models.ForeignKey(
        "stores.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("store")
    ), replaces="store")
    legal_entity = ledger_field(models.ForeignKey(
        "stores.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("legal entity"), db_index=False,
        help_text=_("The company that issued (earned) or honoured (spent) these points, for settlement."),
    ), replaces="legal_entity")
    created_at = ledger_field(
        models.DateTimeField(_("time"), default=timezone.now, db_index=True), replaces="created_at"
    )

    class Meta:
        verbose_name = _("points entry")
        verbose_name_plural = _("points ledger")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["member", "created_at"], name="points_member_time")]
        constraints = [
            models.CheckConstraint(condition=models.Q(balance_after__gte=0), name="points_balance_after_not_negative"),
            models.CheckConstraint(condition=~models.Q(points=0), name="points_entry_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} {self.points:+d}"


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=50, unique=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    history = AuditHistory()

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MemberTag(models.Model):
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="member_tags", verbose_name=_("member"))
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="member_tags", verbose_name=_("tag"))
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("added by"),
    )
    added_at = models.DateTimeField(_("added at"), auto_now_add=True)

    class Meta:
        verbose_name = _("member tag")
        verbose_name_plural = _("member tags")
        constraints = [models.UniqueConstraint(fields=["member", "tag"], name="member_tag_unique")]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.tag_id}"


class MergeCandidate(models.Model):
    """Two member records that may be one person, for staff to review (never merged automatically)."""

    class Reason(models.TextChoices):
        SAME_PHONE = "same_phone", _("same phone, different names")
        SAME_NAME_BIRTH = "same_name_birth", _("same name and birth date")
        SAME_LEGACY_NO = "same_legacy_no", _("same legacy number and name in different sources")
        IMPORT_PHONE = "import_phone", _("imported with a phone already in use")

    class Status(models.TextChoices):
        OPEN = "open", _("to review")
        MERGED = "merged", _("merged")
        DISMISSED = "dismissed", _("not the same person")

    member_a = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", verbose_name=_("member A"))
    member_b = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", verbose_name=_("member B"))
    reason = models.CharField(_("reason"), max_length=20, choices=Reason.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    detected_at = models.DateTimeField(_("detected at"), auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)

    class Meta:
        verbose_name = _("merge candidate")
        verbose_name_plural = _("merge candidates")
        ordering = ["-detected_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["member_a", "member_b"], name="merge_candidate_pair_unique"),
            models.CheckConstraint(
                condition=models.Q(member_a__lt=models.F("member_b")), name="merge_candidate_ordered"
            ),
        ]
        indexes = [models.Index(fields=["status", "detected_at"], name="merge_candidate_status")]

    def __str__(self) -> str:
        return f"{self.member_a} / {self.member_b}"


class MemberEvent(models.Model):
    """What happened to a member, readable on the member's page (registered, merged, frozen ...)."""

    class Kind(models.TextChoices):
        REGISTERED = "registered", _("registered")
        IMPORTED = "imported", _("imported")
        CONTACT_CHANGED = "contact_changed", _("contact details changed")
        MERGED_INTO = "merged_into", _("merged into another member")
        ABSORBED = "absorbed", _("absorbed another member")
        STATUS_CHANGED = "status_changed", _("status changed")
        TAGGED = "tagged", _("tagged")

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="events", verbose_name=_("member"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("by"),
    )
    store = models.ForeignKey(
        "stores.Store", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("store")
    )
    data = models.JSONField(_("details"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("member event")
        verbose_name_plural = _("member events")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["member", "created_at"], name="member_event_time")]

    def __str__(self) -> str:
        return f"{self.member_id} {self.get_kind_display()}"

    def description(self) -> str:
        """What happened, as a sentence in the user's language (the data is kept as the service wrote it)."""
        data = self.data if isinstance(self.data, dict) else {}
        kind = self.kind
        if kind in (self.Kind.REGISTERED, self.Kind.IMPORTED):
            channel = data.get("channel")
            channel = Member.Channel(channel).label if channel in Member.Channel.values else channel
            if kind == self.Kind.IMPORTED and data.get("external_no"):
                text = gettext("Imported from %(source)s, its number there %(number)s.") % {
                    "source": data.get("source", ""), "number": data["external_no"]}
            elif kind == self.Kind.IMPORTED:
                text = gettext("Imported from %(source)s.") % {"source": data.get("source") or "-"}
            elif data.get("source"):
                text = gettext("Registered through %(channel)s, from %(source)s.") % {
                    "channel": channel or "-", "source": data["source"]}
            elif channel:
                text = gettext("Registered through %(channel)s.") % {"channel": channel}
            else:
                text = str(self.get_kind_display())
        elif kind == self.Kind.CONTACT_CHANGED:
            names = []
            for name in data.get("fields") or []:
                try:
                    names.append(str(Member._meta.get_field(name).verbose_name))
                except FieldDoesNotExist:
                    names.append(str(name))
            text = gettext("Changed: %(fields)s.") % {"fields": gettext(", ").join(names)}
        elif kind == self.Kind.STATUS_CHANGED:
            statuses = dict(Member.Status.choices)
            text = gettext("Status changed from %(before)s to %(after)s.") % {
                "before": statuses.get(data.get("from"), data.get("from") or "-"),
                "after": statuses.get(data.get("to"), data.get("to") or "-")}
            if data.get("reason"):
                text += " " + gettext("Reason: %(reason)s") % {"reason": data["reason"]}
        elif kind == self.Kind.TAGGED:
            text = gettext("Tagged “%(tag)s”.") % {"tag": data.get("tag", "")}
        elif kind == self.Kind.MERGED_INTO:
            text = gettext("Merged into member %(member_no)s (approval #%(approval)s).") % {
                "member_no": data.get("survivor", ""), "approval": data.get("approval", "")}
        elif kind == self.Kind.ABSORBED:
            text = gettext("Took over member %(member_no)s (approval #%(approval)s).") % {
                "member_no": data.get("merged", ""), "approval": data.get("approval", "")}
        else:
            text = str(self.get_kind_display())
        return text

    description.short_description = _("what happened")

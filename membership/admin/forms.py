"""The forms of the membership admin screens; each checks with the same service that writes."""

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.forms import add_service_error
from core.pii import mask_phone
from membership import services
from membership.errors import MemberInvalid
from membership.forms import PaidTierSaleForm
from membership.models import Gift, Member, MemberCard, PointsPolicy, Tag, Tier


class MemberAddForm(forms.ModelForm):
    """Registration from the admin: the same validation and service as the service desk."""

    id_number = forms.CharField(label=_("ID number"), max_length=30, required=False)
    card_no = forms.CharField(label=_("member card number"), max_length=32, required=False)
    channel = forms.ChoiceField(
        label=_("registration channel"),
        choices=[(value, label) for value, label in Member.Channel.choices
                 if value in (Member.Channel.DESK, Member.Channel.PARTNER)],
        initial=Member.Channel.DESK,
    )
    stores_required = False

    class Meta:
        model = Member
        fields = ["name", "id_type", "id_number", "gender", "birth_date", "phone", "family_phone", "address",
                  "contact_channel", "marketing_consent", "card_no", "registered_store", "channel", "notes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "registered_store" in self.fields:
            self.fields["registered_store"].required = self.stores_required

    def member_input(self) -> services.MemberInput:
        data = self.cleaned_data
        return services.MemberInput(
            name=data.get("name") or "", phone=data.get("phone") or "", family_phone=data.get("family_phone") or "",
            id_type=data.get("id_type") or "", id_number=data.get("id_number") or "",
            birth_date=data.get("birth_date"), gender=data.get("gender") or "", address=data.get("address") or "",
            contact_channel=data.get("contact_channel") or "", marketing_consent=bool(data.get("marketing_consent")),
            notes=data.get("notes") or "", card_no=data.get("card_no") or "",
        )

    def clean(self):
        cleaned = super().clean()
        try:
            values = services.member_input_clean(self.member_input())
        except MemberInvalid as error:
            add_service_error(self, error)
            return cleaned
        if values["id_number_digest"]:
            existing = services.member_by_id_digest(values["id_number_digest"])
            if existing is not None:
                self.add_error("id_number", gettext("A member with this ID number is already registered: "
                                                    "%(member_no)s.") % {"member_no": existing.member_no})
        card_no = (cleaned.get("card_no") or "").strip()
        if card_no and MemberCard.objects.filter(card_no=card_no).exists():
            self.add_error("card_no", gettext("This member card number is already in use."))
        return cleaned


class MemberChangeForm(forms.ModelForm):
    """Contact details and notes; everything else about a member is read-only here."""

    can_see_full_phone = False

    class Meta:
        model = Member
        fields = [*services.CONTACT_FIELDS, "notes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.can_see_full_phone:
            return
        # Staff without the permission never receive the number, not even in an input's value.
        for name in ("phone", "family_phone"):
            if name in self.fields:
                self.initial[name] = ""
                self.fields[name].widget.attrs["placeholder"] = mask_phone(getattr(self.instance, name))
                self.fields[name].help_text = _("Shown masked. Type a new number to replace it; "
                                                "leave empty to keep it.")

    def clean(self):
        cleaned = super().clean()
        member = self.instance
        if not self.can_see_full_phone:
            for name in ("phone", "family_phone"):
                if name in self.fields and not cleaned.get(name):
                    cleaned[name] = getattr(member, name)
        values = {name: cleaned.get(name, getattr(member, name)) for name in services.CONTACT_FIELDS}
        try:
            services.member_input_clean(services.MemberInput(name=member.name, **values),
                                        require_contact=not member.id_number_digest)
        except MemberInvalid as error:
            add_service_error(self, error)
        return cleaned


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=500,
                             widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class StatusForm(ReasonForm):
    status = forms.ChoiceField(
        label=_("new status"),
        choices=[(value, label) for value, label in Member.Status.choices if value != Member.Status.MERGED],
    )
    field_order = ["status", "reason"]


class TagChoiceForm(forms.Form):
    tag = forms.ModelChoiceField(label=_("tag"), queryset=Tag.objects.all())


class MergeReviewForm(forms.Form):
    survivor = forms.ChoiceField(label=_("record that stays"), widget=forms.RadioSelect)
    reason = forms.CharField(label=_("reason"), required=False, max_length=500,
                             widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))

    def __init__(self, *args, member_a: Member, member_b: Member, **kwargs):
        super().__init__(*args, **kwargs)
        self.members = {str(member_a.pk): member_a, str(member_b.pk): member_b}
        self.fields["survivor"].choices = [(str(m.pk), f"{m.member_no} {m.name}") for m in (member_a, member_b)]
        # The record with an ID number, then the older one, usually carries the person's history.
        default = sorted((member_a, member_b), key=lambda m: (not m.id_number_digest, m.registered_at, m.pk))[0]
        self.fields["survivor"].initial = str(default.pk)

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(gettext("Give a reason for the merge."))
        return reason


class BulkTagForm(forms.Form):
    file = forms.FileField(
        label=_("file"),
        help_text=_("An .xlsx or .csv file: member numbers in a column named member_no or 会员号, "
                    "or in the first column without a header."),
    )


class PointsAdjustForm(forms.Form):
    ADJUST, WAIVE = "adjust", "waive"
    what = forms.ChoiceField(
        label=_("what to do"), initial=ADJUST, widget=forms.RadioSelect,
        choices=[(ADJUST, _("adjust the points balance")), (WAIVE, _("waive points owed"))],
    )
    points = forms.IntegerField(
        label=_("points"), help_text=_("Positive adds points, negative takes them away. Whole points only."),
    )
    reason = forms.CharField(label=_("reason"), max_length=200,
                             widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
                             help_text=_("Shown to the approver and kept with the ledger entry."))

    def __init__(self, *args, owes_points: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not owes_points:
            # Nothing to waive: the form is the plain adjustment.
            del self.fields["what"]

    def clean_points(self):
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(gettext("Enter a number of points other than 0."))
        return points

    @property
    def waives(self) -> bool:
        return self.cleaned_data.get("what") == self.WAIVE


class PaidTierAdminForm(PaidTierSaleForm):
    store = forms.ModelChoiceField(label=_("selling store"), queryset=None, required=False,
                                   help_text=_("Leave empty for a sale by headquarters."))

    def __init__(self, *args, stores, store_required: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["store"].queryset = stores
        self.fields["store"].required = store_required


class GiftStockReceiveForm(forms.Form):
    gift = forms.ModelChoiceField(label=_("gift"), queryset=Gift.objects.filter(is_active=True))
    store = forms.ModelChoiceField(label=_("store"), queryset=None)
    quantity = forms.IntegerField(label=_("quantity received"), min_value=1, max_value=100_000)
    reason = forms.CharField(label=_("note"), max_length=200, required=False,
                             help_text=_("Delivery note number or supplier, for the stock history."))

    def __init__(self, *args, stores, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["store"].queryset = stores


class GiftStockCorrectForm(forms.Form):
    quantity = forms.IntegerField(label=_("counted quantity"), min_value=0, max_value=1_000_000,
                                  help_text=_("What the stock count found on the shelf."))
    # The quantity on the books when the form was shown: the correction is the difference from it.
    seen = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    reason = forms.CharField(label=_("reason"), max_length=200,
                             widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class TierForm(forms.ModelForm):
    class Meta:
        model = Tier
        fields = ["code", "name", "kind", "rank", "is_active", "points_multiplier", "discount_rate", "discount_text",
                  "benefits", "threshold", "grace_days", "fee", "term_months"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") == Tier.Kind.PAID and not cleaned.get("fee"):
            self.add_error("fee", gettext("A paid tier needs a fee."))
        return cleaned


class PointsPolicyForm(forms.ModelForm):
    class Meta:
        model = PointsPolicy
        fields = ["cash_points", "cash_value", "cash_min_points", "cash_max_points", "expiry_enabled", "expiry_years",
                  "expiry_notice_days", "tier_window_months"]

    def clean(self):
        cleaned = super().clean()
        low, high = cleaned.get("cash_min_points"), cleaned.get("cash_max_points")
        if low is not None and high is not None and low > high:
            self.add_error("cash_max_points", gettext("The maximum must not be below the minimum."))
        return cleaned

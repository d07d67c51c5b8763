"""Targeted campaigns (精准营销): drafting, approval, the start that takes the members, the end, and reach.

A campaign is a draft until it is submitted. Submitting goes through the approvals engine
("campaigns.targeted_campaign_start", amount = the budget): without a policy for that amount it is scheduled at
once, otherwise it waits for another person's approval (rejected or withdrawn: a draft again). The nightly
`targeted_campaigns_switch` starts scheduled campaigns on their first day and ends running ones after their last.

Starting takes a snapshot of the segment and writes one CampaignMember per member, in chunks: the group comes
from a stable hash of (campaign, member), so the same member always falls in the same group of a campaign; the
reach channel follows the member's preferred channel with fallbacks. Targeted members get the coupon, the
points and the tag. The start runs in one transaction: if the coupon template cannot issue to every targeted
member, nothing of it is written.
"""

import hashlib
import string
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.queries import pending_request
from approvals.services import approval_request_cancel, approval_request_submit
from campaigns.errors import (
    CallNotAllowed,
    CampaignInvalid,
    CouponQuantityExhausted,
    CouponTemplateNotActive,
    SegmentInvalid,
)
from campaigns.models import (
    CallAttempt,
    CampaignMember,
    Coupon,
    CouponBatch,
    CouponTemplate,
    Segment,
    SegmentMember,
    SegmentSnapshot,
    TargetedCampaign,
)
from campaigns.segments import rules_count, rules_queryset
from campaigns.services.issuing import coupons_issue
from campaigns.services.segments import segment_snapshot_take
from core.errors import DomainError
from core.numbers import money_display
from membership.models import Member, MemberTag, PointsEntry, PointsPolicy, Tag
from membership.services.ledger import points_post
from membership.services.points import cash_value_of
from stores.models import LegalEntity
from stores.queries import user_store_ids

__all__ = [
    "CAMPAIGN_FIELDS",
    "START_CHUNK",
    "TARGETED_CAMPAIGN_START",
    "call_record",
    "campaign_cancel",
    "campaign_code_new",
    "campaign_end",
    "campaign_estimate",
    "campaign_overlaps",
    "campaign_save",
    "campaign_start",
    "campaign_submit",
    "contacts_mark_reached",
    "message_fill",
    "control_group",
    "member_channel",
    "targeted_campaigns_switch",
]

TARGETED_CAMPAIGN_START = "campaigns.targeted_campaign_start"
# What a draft's form may change; everything else is set by the lifecycle.
CAMPAIGN_FIELDS = ("name", "description", "segment", "control_percent", "starts_on", "ends_on", "budget",
                   "legal_entity", "coupon_template", "points", "tag", "message_text", "call_list", "call_script",
                   "result_days")
# Members written per round of a start: bounded memory and statement size however large the segment.
START_CHUNK = 5000
ZERO = Decimal("0.00")
MAX_BUDGET = Decimal("999999999999.99")
MAX_POINTS = 1_000_000
ACTIVE_STATUSES = (TargetedCampaign.Status.PENDING, TargetedCampaign.Status.SCHEDULED,
                   TargetedCampaign.Status.RUNNING)
MESSAGE_CHANNELS = (CampaignMember.Channel.SMS, CampaignMember.Channel.WECHAT, CampaignMember.Channel.MAIL)


# --- the split and the channels ---------------------------------------------------------------------------------


def control_group(campaign_id: int, member_id: int, percent: int) -> bool:
    """Whether a member falls in a campaign's control group: sha256 of "campaign:member" read as a number from 0
    to 9,999, below percent x 100. The same pair always gives the same answer (a rerun, a report, an audit)."""
    digest = hashlib.sha256(f"{campaign_id}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < int(percent) * 100


def member_channel(*, contact_channel: str, phone: str, family_phone: str, address: str, call_list: bool,
                   has_store: bool) -> str:
    """How to reach a member: the preferred channel when it can work, else paper mail for one without a phone
    who has an address, else not at all. SMS needs the member's own phone; WeChat is reached through the
    platform, phone or not; a staff call needs a number to call (the member's, or the family phone an elderly
    member left), the campaign's call list and a store to call from; mail needs an address. A member who asked
    for no contact is not reached."""
    channel = CampaignMember.Channel
    has_phone, has_address = bool((phone or "").strip()), bool((address or "").strip())
    if contact_channel == Member.ContactChannel.NONE:
        return channel.NONE
    if contact_channel == Member.ContactChannel.SMS and has_phone:
        return channel.SMS
    if contact_channel == Member.ContactChannel.WECHAT:
        return channel.WECHAT
    if contact_channel == Member.ContactChannel.MAIL and has_address:
        return channel.MAIL
    if (contact_channel == Member.ContactChannel.CALL and call_list and has_store
            and (has_phone or (family_phone or "").strip())):
        return channel.CALL
    if not has_phone and has_address:
        return channel.MAIL
    return channel.NONE


# --- drafting ---------------------------------------------------------------------------------------------------


def _lock(campaign: TargetedCampaign | int) -> TargetedCampaign:
    pk = campaign if isinstance(campaign, int) else campaign.pk
    return (TargetedCampaign.objects.select_for_update(of=("self",))
            .select_related("segment", "coupon_template").get(pk=pk))


def _save(campaign: TargetedCampaign, *, actor, reason: str, fields: list[str] | None = None) -> None:
    campaign._history_user = actor
    campaign._change_reason = reason[:100]
    campaign.save(update_fields=fields)


def _refused(campaign: TargetedCampaign, reason: str, *, fields: dict | None = None) -> CampaignInvalid:
    return CampaignInvalid(gettext("Campaign %(code)s is %(status)s: %(reason)s") % {
        "code": campaign.code, "status": campaign.get_status_display(), "reason": reason}, fields=fields)


def campaign_code_new(day: date) -> str:
    """The next free campaign code of the day: "TC" + yyyymmdd + a three-digit counter."""
    prefix = f"TC{day:%Y%m%d}"
    taken = TargetedCampaign.objects.filter(code__startswith=prefix).values_list("code", flat=True)
    numbers = [int(code[len(prefix):]) for code in taken if code[len(prefix):].isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1:03d}"


def _instance(model, value, field: str, errors: dict):
    if value in (None, ""):
        return None
    if isinstance(value, model):
        return value
    try:
        return model.objects.get(pk=int(value))
    except (TypeError, ValueError, model.DoesNotExist):
        errors[field] = [gettext("No such %(thing)s.") % {"thing": model._meta.verbose_name}]
        return None


def _whole(value, field: str, errors: dict, *, low: int, high: int, label: str) -> int:
    if value in (None, ""):
        return low
    try:
        number = int(value)
        if isinstance(value, bool) or number != Decimal(str(value)):
            raise ValueError
    except (TypeError, ValueError, ArithmeticError):
        errors[field] = [gettext("%(label)s is a whole number.") % {"label": label}]
        return low
    if not low <= number <= high:
        errors[field] = [gettext("%(label)s is from %(low)s to %(high)s.") % {
            "label": label, "low": f"{low:,}", "high": f"{high:,}"}]
    return number


def message_fill(text: str, name: str) -> str:
    """The message a member gets: {name} becomes their name and doubled braces single ones, as campaign_save
    checked; a text that does not read as such (saved before that check) only has {name} replaced."""
    try:
        return text.format(name=name)
    except (ValueError, KeyError, IndexError, AttributeError):
        return text.replace("{name}", name)


def _message_problem(text: str) -> str:
    try:
        names = {name for _literal, name, _spec, _conversion in string.Formatter().parse(text) if name is not None}
    except ValueError:
        names = {"?"}
    if names - {"name"}:
        return gettext("The message may hold only the placeholder {name} (the member's name); write other braces "
                       "doubled: {{ and }}.")
    return ""


def _values_clean(campaign: TargetedCampaign, values: Mapping, *, today: date, new: bool) -> dict:
    """The draft's fields from `values` (what is not given keeps its current value). Raise CampaignInvalid naming
    each field."""
    errors: dict[str, list[str]] = {}
    related = ("segment", "legal_entity", "coupon_template", "tag")
    merged = {name: getattr(campaign, name) for name in CAMPAIGN_FIELDS if name not in related}
    for name in related:
        merged[name] = getattr(campaign, name) if getattr(campaign, f"{name}_id") else None
    unknown = set(values) - set(CAMPAIGN_FIELDS) - {"code"}
    if unknown:
        raise CampaignInvalid(fields={name: [gettext("This field cannot be set here.")] for name in sorted(unknown)})
    merged.update({name: value for name, value in values.items() if name != "code"})
    clean: dict = {}
    clean["name"] = str(merged.get("name") or "").strip()
    if not clean["name"]:
        errors["name"] = [gettext("Give the campaign a name.")]
    elif len(clean["name"]) > 100:
        errors["name"] = [gettext("The name is at most 100 characters.")]
    clean["description"] = str(merged.get("description") or "").strip()
    clean["segment"] = _instance(Segment, merged.get("segment"), "segment", errors)
    if clean["segment"] is None and "segment" not in errors:
        errors["segment"] = [gettext("Choose the segment the campaign reaches.")]
    clean["control_percent"] = _whole(merged.get("control_percent"), "control_percent", errors, low=0, high=50,
                                      label=gettext("The control group share"))
    clean["points"] = _whole(merged.get("points"), "points", errors, low=0, high=MAX_POINTS,
                             label=gettext("The points per member"))
    result_days = merged.get("result_days")
    clean["result_days"] = _whole(30 if result_days in (None, "") else result_days, "result_days", errors, low=1,
                                  high=365, label=gettext("The results window"))
    for name in ("starts_on", "ends_on"):
        value = merged.get(name)
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError:
                errors[name] = [gettext("Give a date as YYYY-MM-DD.")]
                value = None
        elif isinstance(value, datetime) or (value is not None and not isinstance(value, date)):
            errors[name] = [gettext("Give a date as YYYY-MM-DD.")]
            value = None
        clean[name] = value
    starts_on, ends_on = clean["starts_on"], clean["ends_on"]
    if starts_on is None and "starts_on" not in errors:
        errors["starts_on"] = [gettext("Give the campaign's first day.")]
    if ends_on is None and "ends_on" not in errors:
        errors["ends_on"] = [gettext("Give the campaign's last day.")]
    if starts_on and ends_on and ends_on < starts_on:
        errors["ends_on"] = [gettext("The last day cannot be before the first day (%(day)s).") % {"day": starts_on}]
    if starts_on and starts_on < today and (new or starts_on != campaign.starts_on):
        errors["starts_on"] = [gettext("The first day cannot be in the past (today is %(day)s).") % {"day": today}]
    budget = merged.get("budget")
    try:
        budget = ZERO if budget in (None, "") else Decimal(str(budget))
        if not budget.is_finite() or budget != budget.quantize(Decimal("0.01")):
            raise ArithmeticError
    except (ArithmeticError, ValueError):
        errors["budget"] = [gettext("Give the budget in yuan with at most two decimals.")]
        budget = ZERO
    if budget < 0 or budget > MAX_BUDGET:
        errors["budget"] = [gettext("The budget is 0 or more and at most %(max)s.") % {
            "max": money_display(MAX_BUDGET)}]
    clean["budget"] = budget
    clean["legal_entity"] = _instance(LegalEntity, merged.get("legal_entity"), "legal_entity", errors)
    clean["coupon_template"] = _instance(CouponTemplate, merged.get("coupon_template"), "coupon_template", errors)
    clean["tag"] = _instance(Tag, merged.get("tag"), "tag", errors)
    clean["message_text"] = str(merged.get("message_text") or "").strip()
    if clean["message_text"] and (problem := _message_problem(clean["message_text"])):
        errors["message_text"] = [problem]
    clean["call_list"] = bool(merged.get("call_list"))
    clean["call_script"] = str(merged.get("call_script") or "").strip()
    template = clean["coupon_template"]
    if template is not None and template.status == CouponTemplate.Status.ENDED:
        errors["coupon_template"] = [gettext("Coupon template %(code)s has ended; choose a running one.")
                                     % {"code": template.code}]
    if clean["points"] and clean["legal_entity"] is None and "legal_entity" not in errors:
        errors["legal_entity"] = [gettext("Give the company that pays for the points the campaign gives.")]
    segment = clean["segment"]
    if segment is not None and segment.purpose == Segment.Purpose.SERVICE:
        refusal = gettext("A service segment reaches members who may not have given marketing consent: marketing "
                          "needs consent, so only a call list and a tag are allowed.")
        for name in ("coupon_template", "points", "message_text"):
            if clean[name]:
                errors[name] = [refusal]
    if not (template or clean["points"] or clean["tag"] or clean["message_text"] or clean["call_list"]):
        errors.setdefault("coupon_template", []).append(gettext(
            "Give the campaign at least one action or reach: a coupon, points, a tag, a message or a call list."))
    if errors:
        raise CampaignInvalid(fields=errors)
    return clean


@transaction.atomic
def campaign_save(*, campaign: TargetedCampaign | None = None, values: Mapping, operator) -> TargetedCampaign:
    """Create a draft campaign or change one (only a draft changes). Raise CampaignInvalid naming each field."""
    today = timezone.localdate()
    new = campaign is None
    if new:
        campaign = TargetedCampaign(created_by=operator)
    else:
        campaign = _lock(campaign)
        if campaign.status != TargetedCampaign.Status.DRAFT:
            raise _refused(campaign, gettext("only a draft can be changed."))
    clean = _values_clean(campaign, values, today=today, new=new)
    for name, value in clean.items():
        setattr(campaign, name, value)
    if new:
        code = str(values.get("code") or "").strip().upper()
        if code:
            if TargetedCampaign.objects.filter(code=code).exists():
                raise CampaignInvalid(fields={"code": [gettext("Another campaign has the code %(code)s.")
                                                       % {"code": code}]})
            campaign.code = code
        else:
            campaign.code = campaign_code_new(today)
        campaign.scenario = campaign.segment.scenario
        try:
            campaign.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as error:  # the model's validators (the code's format) name their fields
            raise CampaignInvalid(fields=error.message_dict) from None
    _save(campaign, actor=operator, reason=gettext("created") if new else gettext("changed"))
    return campaign


# --- estimate and overlaps --------------------------------------------------------------------------------------


def _coupon_worth(template: CouponTemplate | None) -> tuple[Decimal, bool]:
    """The most one coupon of the template can cost, and whether that is a true bound (a percent-off coupon
    without a cap has none; a repeating 满减 counts one step)."""
    if template is None:
        return ZERO, True
    if template.kind == CouponTemplate.Kind.PERCENT_OFF:
        if template.max_discount is None:
            return ZERO, False
        return template.max_discount, True
    return template.amount, not (template.kind == CouponTemplate.Kind.THRESHOLD and template.repeat)


def _started(campaign: TargetedCampaign) -> bool:
    return campaign.status in (TargetedCampaign.Status.RUNNING, TargetedCampaign.Status.ENDED)


def campaign_estimate(*, campaign: TargetedCampaign) -> dict:
    """What the campaign would reach and cost at most: {members, target, control, cost_max, coupon_bounded}.

    Before the start the members are the segment's count now and the groups follow the control share; after it,
    the members taken. cost_max = targeted x (the coupon's amount off, or its cap + the points valued at the
    points policy's cash rate)."""
    if _started(campaign):
        target, control = campaign.target_count, campaign.control_count
        members = target + control
    else:
        members = rules_count(campaign.segment.rules)
        control = members * campaign.control_percent // 100
        target = members - control
    worth, bounded = _coupon_worth(campaign.coupon_template if campaign.coupon_template_id else None)
    cost = worth * target
    if campaign.points:
        cost += cash_value_of(campaign.points * target, PointsPolicy.current())
    return {"members": members, "target": target, "control": control, "cost_max": cost.quantize(Decimal("0.01")),
            "coupon_bounded": bounded}


def _members_of(campaign: TargetedCampaign):
    """The member ids a campaign holds: its members once started, else its segment's rules now."""
    if _started(campaign):
        return CampaignMember.objects.filter(campaign=campaign).values("member_id")
    return rules_queryset(campaign.segment.rules).values("pk")


def campaign_overlaps(*, campaign: TargetedCampaign) -> list[tuple[TargetedCampaign, int]]:
    """Other campaigns waiting, scheduled or running on days this one runs, that hold some of its members, with how
    many (their members if started, else their segment's rules now); the most shared first."""
    others = (TargetedCampaign.objects.filter(status__in=ACTIVE_STATUSES, starts_on__lte=campaign.ends_on,
                                              ends_on__gte=campaign.starts_on)
              .exclude(pk=campaign.pk).select_related("segment").order_by("starts_on", "pk"))
    found = []
    for other in others:
        if _started(campaign):
            shared = CampaignMember.objects.filter(campaign=campaign, member_id__in=_members_of(other)).count()
        else:
            shared = rules_queryset(campaign.segment.rules).filter(pk__in=_members_of(other)).count()
        if shared:
            found.append((other, shared))
    return sorted(found, key=lambda item: -item[1])


# --- approval ---------------------------------------------------------------------------------------------------


def _submit_problems(campaign: TargetedCampaign, *, today: date) -> tuple[dict, dict]:
    """Why the campaign cannot go to approval (field -> messages; empty when it can), and its estimate."""
    problems: dict[str, list[str]] = {}
    try:
        _values_clean(campaign, {}, today=today, new=False)
    except CampaignInvalid as error:
        problems.update(error.fields or {})
    if campaign.starts_on < today:
        problems["starts_on"] = [gettext("The first day (%(day)s) has passed; move the dates.") % {
            "day": campaign.starts_on}]
    template = campaign.coupon_template if campaign.coupon_template_id else None
    estimate = campaign_estimate(campaign=campaign)
    if template is not None and not estimate["coupon_bounded"] and template.kind == CouponTemplate.Kind.PERCENT_OFF:
        problems["coupon_template"] = [gettext(
            "Coupon template %(code)s takes a percent off without a largest discount: the campaign's cost has no "
            "upper bound. Choose a template with a cap.") % {"code": template.code}]
    elif estimate["cost_max"] > campaign.budget:
        problems["budget"] = [gettext(
            "The campaign may cost up to %(cost)s (%(target)s targeted members), more than its budget of "
            "%(budget)s.") % {"cost": money_display(estimate["cost_max"]), "target": f"{estimate['target']:,}",
                              "budget": money_display(campaign.budget)}]
    if estimate["members"] == 0:
        problems["segment"] = [gettext("The segment holds no member now.")]
    return problems, estimate


def _overlap_lines(overlaps: list[tuple[TargetedCampaign, int]]) -> list[str]:
    return [ngettext("%(code)s %(name)s (%(start)s to %(end)s, %(status)s) also holds %(count)s of its members.",
                     "%(code)s %(name)s (%(start)s to %(end)s, %(status)s) also holds %(count)s of its members.",
                     count) % {"code": other.code, "name": other.name, "start": other.starts_on, "end": other.ends_on,
                               "status": other.get_status_display(), "count": f"{count:,}"}
            for other, count in overlaps]


@transaction.atomic
def campaign_submit(*, campaign: TargetedCampaign, operator, reason: str = "") -> ApprovalRequest | None:
    """Send a draft for approval (amount = its budget); scheduled at once when no policy covers the budget.

    Campaigns on the same members in the same days are named in the request's reason and payload. Return the
    approval request. Raise CampaignInvalid (status, a field, an estimated cost above the budget),
    ApprovalAlreadyPending.
    """
    today = timezone.localdate()
    campaign = _lock(campaign)
    if campaign.status != TargetedCampaign.Status.DRAFT:
        raise _refused(campaign, gettext("only a draft can be submitted."))
    problems, estimate = _submit_problems(campaign, today=today)
    if problems:
        raise CampaignInvalid(
            gettext("Campaign %(code)s cannot be submitted: %(problems)s") % {
                "code": campaign.code, "problems": " ".join(text for texts in problems.values() for text in texts)},
            fields=problems)
    overlaps = campaign_overlaps(campaign=campaign)
    campaign.status = TargetedCampaign.Status.PENDING
    _save(campaign, actor=operator, reason=gettext("submitted for approval"), fields=["status"])
    text = (reason or "").strip() or gettext("Start targeted campaign %(code)s %(name)s.") % {
        "code": campaign.code, "name": campaign.name}
    text += "\n" + gettext("Estimate: %(members)s members, %(target)s targeted, %(control)s in the control group, "
                           "cost up to %(cost)s.") % {
        "members": f"{estimate['members']:,}", "target": f"{estimate['target']:,}",
        "control": f"{estimate['control']:,}", "cost": money_display(estimate["cost_max"])}
    if not estimate["coupon_bounded"]:
        text += "\n" + gettext("The coupon repeats its discount for every full threshold: the cost counts one "
                               "discount per coupon.")
    if overlaps:
        text += "\n" + gettext("Warning: overlapping campaigns on the same members in the same days:") + "\n" + \
            "\n".join(_overlap_lines(overlaps))
    return approval_request_submit(
        action=TARGETED_CAMPAIGN_START, subject=campaign, requested_by=operator, reason=text,
        amount=campaign.budget,
        payload={"campaign_id": campaign.pk, "code": campaign.code, "budget": campaign.budget,
                 "starts_on": campaign.starts_on, "ends_on": campaign.ends_on,
                 "members": estimate["members"], "target": estimate["target"], "control": estimate["control"],
                 "cost_max": estimate["cost_max"],
                 "overlaps": [{"code": other.code, "name": other.name, "members": count}
                              for other, count in overlaps]},
    )


def _switch_soon() -> None:
    from campaigns.tasks import targeted_campaigns_switch as task

    task.delay()


def _start_execute(request: ApprovalRequest) -> None:
    """Approved: the campaign is scheduled, in the approval's transaction (its checks made again under lock).
    One whose first day has come starts right after the approval commits."""
    campaign = _lock(int(request.payload["campaign_id"]))
    if campaign.status != TargetedCampaign.Status.PENDING:
        raise _refused(campaign, gettext("only a campaign waiting for approval can be scheduled."))
    problems, _estimate = _submit_problems(campaign, today=min(timezone.localdate(), campaign.starts_on))
    if problems:
        raise _refused(campaign, " ".join(text for texts in problems.values() for text in texts), fields=problems)
    campaign.status = TargetedCampaign.Status.SCHEDULED
    _save(campaign, actor=request.decided_by or request.requested_by,
          reason=gettext("approved and scheduled (#%(request)s)") % {"request": request.pk}, fields=["status"])
    if campaign.starts_on <= timezone.localdate():
        transaction.on_commit(_switch_soon)


def _start_reject(request: ApprovalRequest) -> None:
    """Rejected or withdrawn: the campaign is a draft again, to change and submit anew."""
    campaign = _lock(int(request.payload["campaign_id"]))
    if campaign.status != TargetedCampaign.Status.PENDING:
        return
    campaign.status = TargetedCampaign.Status.DRAFT
    _save(campaign, actor=request.decided_by or request.requested_by,
          reason=gettext("not approved (#%(request)s)") % {"request": request.pk}, fields=["status"])


registry.register(TARGETED_CAMPAIGN_START, label=_("Start a targeted campaign"), execute=_start_execute,
                  on_reject=_start_reject)


# --- start, end, cancel -----------------------------------------------------------------------------------------


def _coupon_problem(template: CouponTemplate, *, now: datetime) -> str:
    if template.status != CouponTemplate.Status.ACTIVE:
        return gettext("its coupon template %(code)s is %(status)s, not active.") % {
            "code": template.code, "status": template.get_status_display()}
    if template.valid_until is not None and template.valid_until <= now:
        return gettext("the validity of its coupon template %(code)s ended on %(day)s.") % {
            "code": template.code, "day": timezone.localtime(template.valid_until).strftime("%Y-%m-%d %H:%M")}
    return ""


def _snapshot_members(snapshot: SegmentSnapshot, *, marketing: bool):
    """The snapshot's members with what the channel needs, in chunks of START_CHUNK by member id."""
    last = 0
    while True:
        rows = SegmentMember.objects.filter(snapshot=snapshot, member_id__gt=last, member__status=Member.Status.ACTIVE)
        if marketing:
            rows = rows.filter(member__marketing_consent=True)
        chunk = list(rows.order_by("member_id").values_list(
            "member_id", "member__contact_channel", "member__phone", "member__family_phone", "member__address",
            "member__registered_store_id")[:START_CHUNK])
        if not chunk:
            return
        yield chunk
        last = chunk[-1][0]


def _members_write(campaign: TargetedCampaign, snapshot: SegmentSnapshot) -> tuple[int, int]:
    marketing = campaign.segment.purpose == Segment.Purpose.MARKETING
    target = control = 0
    for chunk in _snapshot_members(snapshot, marketing=marketing):
        rows = []
        for member_id, contact_channel, phone, family_phone, address, store_id in chunk:
            in_control = control_group(campaign.pk, member_id, campaign.control_percent)
            channel = member_channel(contact_channel=contact_channel, phone=phone, family_phone=family_phone,
                                     address=address, call_list=campaign.call_list, has_store=store_id is not None)
            if not marketing and channel != CampaignMember.Channel.CALL:
                # A service campaign reaches members by a staff call only: no message or letter without consent.
                channel = CampaignMember.Channel.NONE
            rows.append(CampaignMember(
                campaign=campaign, member_id=member_id, store_id=store_id, channel=channel,
                group=CampaignMember.Group.CONTROL if in_control else CampaignMember.Group.TARGET,
                points_given=0 if in_control else campaign.points,
            ))
            control += in_control
            target += not in_control
        CampaignMember.objects.bulk_create(rows, batch_size=1000)
    return target, control


def _target_ids(campaign: TargetedCampaign):
    """The targeted members' ids in chunks of START_CHUNK."""
    last = 0
    while True:
        chunk = list(CampaignMember.objects.filter(campaign=campaign, group=CampaignMember.Group.TARGET,
                                                   member_id__gt=last)
                     .order_by("member_id").values_list("member_id", flat=True)[:START_CHUNK])
        if not chunk:
            return
        yield chunk
        last = chunk[-1]


def _coupons_give(campaign: TargetedCampaign, *, now: datetime) -> None:
    member_ids = [member_id for chunk in _target_ids(campaign) for member_id in chunk]
    if not member_ids:
        return
    try:
        batch = coupons_issue(template=campaign.coupon_template_id, member_ids=member_ids,
                              channel=CouponBatch.Channel.SEGMENT, source_name=campaign.code,
                              operator=campaign.created_by)
    except CouponQuantityExhausted as error:
        raise _refused(campaign, gettext(
            "it cannot start: its coupon template %(code)s has %(left)s coupons left to issue, %(count)s targeted "
            "members need one. Nothing was started.") % {
            "code": campaign.coupon_template.code, "left": f"{error.params.get('left', 0):,}",
            "count": f"{len(member_ids):,}"}, fields={"coupon_template": [str(error)]}) from None
    except CouponTemplateNotActive as error:
        raise _refused(campaign, gettext("it cannot start: %(problem)s") % {"problem": error},
                       fields={"coupon_template": [str(error)]}) from None
    # Each targeted member's coupon of this issue (members at the template's limit per member get none).
    CampaignMember.objects.filter(campaign=campaign, group=CampaignMember.Group.TARGET).update(
        coupon=Subquery(Coupon.objects.filter(batch=batch, member_id=OuterRef("member_id"))
                        .order_by("pk").values("pk")[:1]))


def _points_give(campaign: TargetedCampaign, *, now: datetime) -> None:
    reason = gettext("Targeted campaign %(code)s") % {"code": campaign.code}
    for chunk in _target_ids(campaign):
        for member_id in chunk:
            points_post(member=Member(pk=member_id), points=campaign.points, kind=PointsEntry.Kind.ADJUST,
                        reason=reason, cause=campaign, legal_entity=campaign.legal_entity,
                        operator=campaign.created_by, created_at=now)


def _tag_give(campaign: TargetedCampaign) -> None:
    for chunk in _target_ids(campaign):
        MemberTag.objects.bulk_create([MemberTag(member_id=member_id, tag_id=campaign.tag_id,
                                                 added_by=campaign.created_by) for member_id in chunk],
                                      ignore_conflicts=True, batch_size=1000)


@transaction.atomic
def campaign_start(*, campaign: TargetedCampaign, now: datetime | None = None) -> TargetedCampaign:
    """Start a scheduled campaign: snapshot its segment, split and record its members, give the targeted ones the
    coupon, points and tag. A campaign already running is returned as it is (a second run changes nothing).

    All or nothing. Raise CampaignInvalid (status, a coupon template that is not active or has too few coupons
    left, a snapshot that failed).
    """
    now = now or timezone.now()
    campaign = _lock(campaign)
    if campaign.status == TargetedCampaign.Status.RUNNING:
        return campaign
    if campaign.status != TargetedCampaign.Status.SCHEDULED:
        raise _refused(campaign, gettext("only a scheduled campaign can start."))
    template = campaign.coupon_template if campaign.coupon_template_id else None
    if template is not None and (problem := _coupon_problem(template, now=now)):
        raise _refused(campaign, gettext("it cannot start: %(problem)s") % {"problem": problem},
                       fields={"coupon_template": [problem]})
    try:
        snapshot = segment_snapshot_take(segment=campaign.segment, requested_by=campaign.created_by)
    except SegmentInvalid as error:
        problems = [text for texts in (error.fields or {}).values() for text in texts] or [str(error)]
        raise _refused(campaign, gettext("it cannot start: %(problem)s") % {"problem": " ".join(problems)},
                       fields={"segment": problems}) from None
    target, control = _members_write(campaign, snapshot)
    if template is not None:
        _coupons_give(campaign, now=now)
    if campaign.points:
        _points_give(campaign, now=now)
    if campaign.tag_id:
        _tag_give(campaign)
    campaign.snapshot = snapshot
    campaign.status = TargetedCampaign.Status.RUNNING
    campaign.started_at = now
    campaign.target_count, campaign.control_count = target, control
    _save(campaign, actor=campaign.created_by,
          reason=gettext("started: %(target)s targeted, %(control)s in the control group") % {
              "target": target, "control": control},
          fields=["snapshot", "status", "started_at", "target_count", "control_count"])
    return campaign


@transaction.atomic
def campaign_end(*, campaign: TargetedCampaign, now: datetime | None = None) -> TargetedCampaign:
    """End a running campaign (an ended one is returned as it is). Its results keep counting purchases within
    the results window. Raise CampaignInvalid."""
    campaign = _lock(campaign)
    if campaign.status == TargetedCampaign.Status.ENDED:
        return campaign
    if campaign.status != TargetedCampaign.Status.RUNNING:
        raise _refused(campaign, gettext("only a running campaign can end."))
    campaign.status = TargetedCampaign.Status.ENDED
    campaign.ended_at = now or timezone.now()
    _save(campaign, actor=None, reason=gettext("ended"), fields=["status", "ended_at"])
    return campaign


@transaction.atomic
def campaign_cancel(*, campaign: TargetedCampaign, operator, reason: str) -> TargetedCampaign:
    """Cancel a campaign that has not started (draft, waiting for approval, scheduled). A request waiting for
    approval is withdrawn by the person who made it. Raise CampaignInvalid."""
    reason = (reason or "").strip()
    if not reason:
        raise CampaignInvalid(fields={"reason": [gettext("Say why the campaign is cancelled.")]})
    campaign = _lock(campaign)
    if campaign.status not in (TargetedCampaign.Status.DRAFT, TargetedCampaign.Status.PENDING,
                               TargetedCampaign.Status.SCHEDULED):
        raise _refused(campaign, gettext("only a campaign that has not started can be cancelled."))
    if campaign.status == TargetedCampaign.Status.PENDING:
        request = pending_request(campaign, actions=[TARGETED_CAMPAIGN_START])
        if request is not None:
            if request.requested_by_id != getattr(operator, "pk", None):
                raise _refused(campaign, gettext(
                    "its approval request #%(request)s waits for a decision: reject it in the approvals inbox, or "
                    "let the person who asked withdraw it.") % {"request": request.pk})
            approval_request_cancel(approval_request=request, user=operator)
    campaign.status = TargetedCampaign.Status.CANCELLED
    _save(campaign, actor=operator, reason=gettext("cancelled: %(reason)s") % {"reason": reason}, fields=["status"])
    return campaign


def targeted_campaigns_switch(*, today: date | None = None) -> dict:
    """The nightly switch: end running campaigns whose last day has passed, start scheduled ones whose first day has
    come (each in its own transaction), cancel scheduled ones whose days all passed before they could start.
    Return the codes {"ended": [...], "started": [...], "cancelled": [...], "failed": {code: message}}."""
    today = today or timezone.localdate()
    done: dict = {"ended": [], "started": [], "cancelled": [], "failed": {}}
    for campaign in TargetedCampaign.objects.filter(status=TargetedCampaign.Status.RUNNING, ends_on__lt=today) \
            .order_by("pk"):
        campaign_end(campaign=campaign)
        done["ended"].append(campaign.code)
    for campaign in TargetedCampaign.objects.filter(status=TargetedCampaign.Status.SCHEDULED, starts_on__lte=today) \
            .order_by("starts_on", "pk"):
        if campaign.ends_on < today:
            _missed(campaign)
            done["cancelled"].append(campaign.code)
            continue
        try:
            campaign_start(campaign=campaign)
        except DomainError as error:
            done["failed"][campaign.code] = str(error)
            continue
        done["started"].append(campaign.code)
    return done


@transaction.atomic
def _missed(campaign: TargetedCampaign) -> None:
    campaign = _lock(campaign)
    if campaign.status == TargetedCampaign.Status.SCHEDULED:
        campaign.status = TargetedCampaign.Status.CANCELLED
        _save(campaign, actor=None, reason=gettext("cancelled: its days passed before it could start"),
              fields=["status"])


# --- reach ------------------------------------------------------------------------------------------------------


@transaction.atomic
def contacts_mark_reached(*, campaign: TargetedCampaign, channel: str, now: datetime | None = None,
                          campaign_member_ids: list[int] | None = None) -> int:
    """Mark the targeted members of a message channel (SMS, WeChat, paper mail) reached, when their list is
    exported for the sending platform or the printer; only `campaign_member_ids` when given (the page of letters
    printed). Return how many were newly marked. Raise CampaignInvalid."""
    if channel not in MESSAGE_CHANNELS:
        raise CampaignInvalid(fields={"channel": [gettext("Choose SMS, WeChat or paper mail.")]})
    if not _started(campaign):
        raise _refused(campaign, gettext("its members are taken when it starts."))
    members = CampaignMember.objects.filter(campaign=campaign, group=CampaignMember.Group.TARGET, channel=channel,
                                            reached_at__isnull=True)
    if campaign_member_ids is not None:
        members = members.filter(pk__in=campaign_member_ids)
    return members.update(reached_at=now or timezone.now())


@transaction.atomic
def call_record(*, campaign_member: CampaignMember, outcome: str, note: str = "", user, store) -> CallAttempt:
    """Record a call from a store's call list: the member must be on that store's list and the user must work for
    the store. "reached" marks the member reached; the member's outcome is the last call's.
    Raise CallNotAllowed, CampaignInvalid (outcome, note, a campaign not running)."""
    member = (CampaignMember.objects.select_for_update(of=("self",)).select_related("campaign")
              .filter(pk=campaign_member.pk).first())
    store_ids = user_store_ids(user)
    if (member is None or store is None or member.store_id != store.pk
            or (store_ids is not None and store.pk not in store_ids)
            or member.channel != CampaignMember.Channel.CALL or member.group != CampaignMember.Group.TARGET):
        raise CallNotAllowed()
    if member.campaign.status != TargetedCampaign.Status.RUNNING:
        raise _refused(member.campaign, gettext("calls are recorded while it runs."))
    errors = {}
    if outcome not in CampaignMember.CallOutcome.values:
        errors["outcome"] = [gettext("Choose how the call went.")]
    note = (note or "").strip()
    if len(note) > 200:
        errors["note"] = [gettext("The note is at most 200 characters.")]
    if errors:
        raise CampaignInvalid(fields=errors)
    now = timezone.now()
    attempt = CallAttempt.objects.create(campaign_member=member, outcome=outcome, note=note, store=store,
                                         called_by=user, called_at=now)
    member.call_outcome = outcome
    fields = ["call_outcome"]
    if outcome == CampaignMember.CallOutcome.REACHED and member.reached_at is None:
        member.reached_at = now
        fields.append("reached_at")
    member.save(update_fields=fields)
    return attempt

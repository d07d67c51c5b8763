"""Every write that changes a member, their identities or tags; their points move through ledger.py."""

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from pypinyin import Style, lazy_pinyin, pinyin

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.services import approval_request_submit
from core.pii import (
    InvalidPersonalData,
    mask_id_number,
    normalize_id_number,
    phone_validate,
    pii_digest,
    pii_encrypt,
    resident_id_parse,
)
from integrations.events import event_emit, subscriptions_for
from integrations.models import EventType
from membership.errors import (
    MemberAlreadyRegistered,
    MemberInvalid,
    MemberNotActive,
    MergeNotPossible,
)
from membership.models import (
    Member,
    MemberCard,
    MemberEvent,
    MemberIdentity,
    MemberTag,
    MergeCandidate,
    Partner,
    PointsEntry,
    Tag,
    Tier,
)
from membership.services.ledger import POINTS_BALANCE_MAX, _lock_members, points_post  # noqa: F401 (a test imports it)

MEMBER_MERGE = "membership.member_merge"
MEMBER_MERGE_CONFLICTING_IDS = "membership.member_merge_conflicting_ids"
LIVE_STATUSES = (Member.Status.ACTIVE, Member.Status.FROZEN)
_OTHER_ID = {
    # Passports and permits: letters and digits of a plausible length.
    Member.IdType.PASSPORT: r"^[A-Z0-9]{5,17}$",
    Member.IdType.HK_MACAU_PERMIT: r"^[A-Z0-9]{8,11}$",
    Member.IdType.TAIWAN_PERMIT: r"^[A-Z0-9]{8,10}$",
}


# --- numbers and names --------------------------------------------------------------------


def luhn_check_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def member_no_new() -> str:
    """A random member number: 8, ten digits, a Luhn check digit (never mistaken for a phone)."""
    body = "8" + f"{secrets.randbelow(10**10):010d}"
    return body + luhn_check_digit(body)


def member_no_is_valid(value: str) -> bool:
    return len(value) == 12 and value.isdigit() and value[0] == "8" and luhn_check_digit(value[:-1]) == value[-1]


# Surnames read differently from the same character in other words (曾 is zeng, not ceng).
_SURNAME_INITIAL = {
    "曾": "z", "单": "s", "解": "x", "仇": "q", "朴": "p", "查": "z", "区": "o", "乐": "y", "尉": "y",
    "缪": "m", "翟": "z", "盖": "g", "覃": "q", "召": "s", "种": "c", "员": "y", "长": "z", "重": "c",
}


_WORD = re.compile(r"[A-Za-z0-9]+")
# Each character's contribution to the initials, filled lazily from pypinyin one character at a time: a Han
# character (its own word, as lazy_pinyin gives it) -> its initial letter; an ASCII letter or digit -> None (it
# starts a word when the character before it does not continue one); anything else -> "" (a word break).
# A character whose readings start with different letters (长 chang/zhang, 乐 le/yue) -> _CONTEXT: pypinyin
# reads it from the words around it, so a name holding one is read whole, as it always was.
_CONTEXT = "context"
_CHAR_INITIALS: dict[str, str | None] = {}


def _char_initial(char: str) -> str | None:
    if char.isascii() and char.isalnum():
        initial = None
    else:
        parts = lazy_pinyin(char, style=Style.FIRST_LETTER, errors="default")
        readings = pinyin(char, style=Style.FIRST_LETTER, heteronym=True, errors="default")
        if parts == [char]:
            initial = ""
        elif len({reading[:1].lower() for group in readings for reading in group}) > 1:
            initial = _CONTEXT
        else:
            initial = "".join(word[:1] for part in parts for word in _WORD.findall(part))
    _CHAR_INITIALS[char] = initial
    return initial


def _name_initials_read_whole(name: str) -> str:
    parts = lazy_pinyin(name, style=Style.FIRST_LETTER, errors="default")
    return "".join(word[:1] for part in parts for word in _WORD.findall(part))


@lru_cache(maxsize=100_000)  # names repeat (张伟, 王芳): a migration of millions meets each many times
def name_initials(name: str) -> str:
    """Pinyin initials of a name (张秀英 -> zxy, John Smith -> js); spaces and punctuation are dropped."""
    name = name.strip()
    if not name:
        return ""
    letters = []
    in_word = False
    for char in name:
        initial = _CHAR_INITIALS.get(char, False)
        if initial is False:
            initial = _char_initial(char)
        if initial is None:
            # Spaces and dots (阿卜杜拉·买买提, "John Smith") would make the initials unsearchable: one letter per word.
            if not in_word:
                letters.append(char)
                in_word = True
        elif initial is _CONTEXT:
            letters = [_name_initials_read_whole(name)]
            break
        else:
            in_word = False
            letters.append(initial)
    initials = "".join(letters).lower()
    if name[0] in _SURNAME_INITIAL:
        initials = _SURNAME_INITIAL[name[0]] + initials[1:]
    return initials[:50]


@dataclass
class IdentityDocument:
    id_type: str
    number: str
    birth_date: date | None = None
    gender: str | None = None

    @property
    def digest(self) -> str | None:
        return pii_digest(self.number) if self.number else None


def id_document_parse(*, id_type: str, id_number: str) -> IdentityDocument:
    """Validate an ID of the given type. Raise InvalidPersonalData naming the rule."""
    number = normalize_id_number(id_number)
    if not number:
        return IdentityDocument(id_type=Member.IdType.NONE, number="")
    if id_type in ("", Member.IdType.NONE):
        id_type = Member.IdType.RESIDENT_ID
    if id_type == Member.IdType.RESIDENT_ID:
        parsed = resident_id_parse(number)
        return IdentityDocument(id_type=id_type, number=parsed.number, birth_date=parsed.birth_date,
                                gender=parsed.gender)
    pattern = _OTHER_ID.get(id_type)
    if pattern is None:
        raise InvalidPersonalData(_("Unknown ID type."))
    if not re.match(pattern, number):
        raise InvalidPersonalData(_("This is not a valid number for a %(type)s.") % {
            "type": Member.IdType(id_type).label})
    return IdentityDocument(id_type=id_type, number=number)


# --- registration and contact details ---------------------------------------------------


@dataclass
class MemberInput:
    """What a person tells the desk (or a form, or an import row) about themselves."""

    name: str
    phone: str = ""
    family_phone: str = ""
    id_type: str = Member.IdType.NONE
    id_number: str = ""
    birth_date: date | None = None
    gender: str = ""
    address: str = ""
    contact_channel: str = Member.ContactChannel.SMS
    marketing_consent: bool = False
    notes: str = ""
    card_no: str = ""
    partner_code: str = ""  # a partner's registration code (联名会员渠道): the member is attributed to it


_GENDERS = frozenset(Member.Gender.values)
_CONTACT_CHANNELS = frozenset(Member.ContactChannel.values)
_ID_NONE = Member.IdType.NONE.value
_GENDER_UNKNOWN = Member.Gender.UNKNOWN.value
_CHANNEL_SMS = Member.ContactChannel.SMS.value


def member_input_clean(data: MemberInput, *, today: date | None = None, require_contact: bool = True) -> dict:
    """Validate and normalise registration data; return model field values.

    Raise MemberInvalid with one message per field that is wrong.
    """
    values, errors = member_values_clean(
        name=data.name, phone=data.phone, family_phone=data.family_phone, id_type=data.id_type,
        id_number=data.id_number, birth_date=data.birth_date, gender=data.gender, address=data.address,
        contact_channel=data.contact_channel, marketing_consent=data.marketing_consent, notes=data.notes,
        today=today or timezone.localdate(), require_contact=require_contact,
    )
    partner_code = (data.partner_code or "").strip()
    if partner_code:
        partner, partner_error = _partner_by_registration_code(partner_code)
        if partner_error:
            errors = {**(errors or {}), "partner_code": [partner_error]}
        elif values is not None:
            values["partner"] = partner
    if errors:
        raise MemberInvalid(fields=errors)
    return values


def _partner_by_registration_code(code: str) -> tuple[Partner | None, str]:
    """The active partner whose registration code is `code` (letters in any case), or the reason there is none."""
    partner = Partner.objects.filter(registration_code__iexact=code).first()
    if partner is None:
        return None, gettext("Partner registration code: no partner has the code %(code)s.") % {"code": code}
    if not partner.is_active:
        return None, gettext("Partner registration code: the partner %(partner)s no longer registers members.") % {
            "partner": partner.name}
    return partner, ""


def member_values_clean(
    *, name: str, phone: str = "", family_phone: str = "", id_type: str = _ID_NONE, id_number: str = "",
    birth_date: date | None = None, gender: str = "", address: str = "", contact_channel: str = _CHANNEL_SMS,
    marketing_consent: bool = False, notes: str = "", today: date, require_contact: bool = True,
) -> tuple[dict | None, dict[str, list[str]]]:
    """The rules of member_input_clean, without raising: (model field values, None) or (None, errors by field).

    member_input_clean and the legacy import (one call per row of a file of millions) both go through here.
    """
    errors: dict[str, list[str]] = {}
    values: dict = {}
    name = " ".join((name or "").split())
    if not name:
        errors["name"] = [gettext("Enter the member's name.")]
    elif len(name) > 50:
        errors["name"] = [gettext("A name has at most 50 characters.")]
    values["name"] = name
    for field_name, raw in (("phone", phone), ("family_phone", family_phone)):
        raw = (raw or "").strip()
        if not raw:
            values[field_name] = ""
            continue
        try:
            values[field_name] = phone_validate(raw)
        except InvalidPersonalData as error:
            errors[field_name] = [str(error.message)]
    number = ""
    document_birth_date = document_gender = None
    document_type = _ID_NONE
    try:
        document = id_document_parse(id_type=id_type or "", id_number=id_number or "")
    except InvalidPersonalData as error:
        errors["id_number"] = [str(error.message)]
    else:
        number, document_type = document.number, document.id_type
        document_birth_date, document_gender = document.birth_date, document.gender
    if birth_date and birth_date > today:
        errors["birth_date"] = [gettext("The birth date cannot be in the future.")]
    if document_birth_date:
        if birth_date and birth_date != document_birth_date:
            errors["birth_date"] = [gettext("The birth date does not match the ID number (%(date)s).")
                                    % {"date": document_birth_date.isoformat()}]
        birth_date = document_birth_date
    gender = document_gender or gender or _GENDER_UNKNOWN
    if gender not in _GENDERS:
        errors["gender"] = [gettext("Unknown gender.")]
    if contact_channel and contact_channel not in _CONTACT_CHANNELS:
        errors["contact_channel"] = [gettext("Unknown contact channel.")]
    if require_contact and not (number or values.get("phone") or values.get("family_phone")):
        errors.setdefault("phone", []).append(
            gettext("Give an ID number, a phone, or a family contact phone so the member can be found again.")
        )
    if errors:
        return None, errors
    values.update(
        id_type=document_type,
        id_number_digest=pii_digest(number) if number else None,
        id_number_sealed=pii_encrypt(number) if number else "",
        id_number_masked=mask_id_number(number),
        birth_date=birth_date,
        gender=gender,
        address=(address or "").strip()[:200],
        contact_channel=contact_channel or _CHANNEL_SMS,
        marketing_consent=bool(marketing_consent),
        notes=(notes or "").strip(),
        name_initials=name_initials(name),
    )
    return values, errors


@transaction.atomic
def member_register(
    *,
    data: MemberInput,
    store=None,
    registered_by=None,
    channel: str = Member.Channel.DESK,
    tier: Tier | None = None,
) -> Member:
    """Register a new member. Raise MemberInvalid, MemberAlreadyRegistered."""
    values = member_input_clean(data)
    if values["id_number_digest"]:
        existing = member_by_id_digest(values["id_number_digest"])
        if existing is not None:
            raise MemberAlreadyRegistered(member_no=existing.member_no)
    card_no = (data.card_no or "").strip()
    if len(card_no) > MemberCard._meta.get_field("card_no").max_length:
        raise MemberInvalid(fields={"card_no": [gettext("A member card number has at most 32 characters.")]})
    if card_no and MemberCard.objects.filter(card_no=card_no).exists():
        raise MemberInvalid(fields={"card_no": [gettext("This member card number is already in use.")]})
    now = timezone.now()
    if values["marketing_consent"]:
        values["marketing_consent_at"] = now
    if values.get("partner") is not None:
        channel = Member.Channel.PARTNER
    member = _member_create(
        values,
        tier=tier or Tier.default(),
        registered_store=store,
        registered_by=registered_by,
        registered_channel=channel,
        registered_at=now,
    )
    if card_no:
        MemberCard.objects.create(card_no=card_no, member=member, issued_store=store)
    MemberEvent.objects.create(
        member=member, kind=MemberEvent.Kind.REGISTERED, actor=registered_by, store=store,
        data={"channel": channel, **({"partner": member.partner.code} if member.partner_id else {})},
    )
    # Every registration (desk, admin, POS, partner) comes through here. Members brought over in bulk by the
    # legacy import (membership/legacy.py) are not announced: they are not new to the group, and a migration
    # of millions would flood every receiver.
    if subscriptions_for(EventType.MEMBER_CREATED):
        event_emit(EventType.MEMBER_CREATED, subject=f"member:{member.member_no}", at=now, data={
            "member_no": member.member_no,
            "store": store.code if store is not None else None,
            "channel": channel,
            "tier": member.tier.code if member.tier is not None else None,
            "created_at": timezone.localtime(now).isoformat(),
        })
    return member


def _member_create(values: dict, **extra) -> Member:
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return Member.objects.create(member_no=member_no_new(), **values, **extra)
        except IntegrityError as error:
            if "id_number" in str(error) or "member_id_number_unique" in str(error):
                existing = member_by_id_digest(values["id_number_digest"])
                raise MemberAlreadyRegistered(member_no=existing.member_no if existing else "?") from None
            continue
    raise IntegrityError("could not find a free member number")


def member_by_id_digest(digest: str) -> Member | None:
    return Member.objects.filter(id_number_digest=digest).exclude(status=Member.Status.MERGED).first()


CONTACT_FIELDS = ("phone", "family_phone", "address", "contact_channel", "marketing_consent")


@transaction.atomic
def member_contact_update(*, member: Member, actor=None, store=None, **changes) -> Member:
    """Change contact details (phone, family phone, address, channel, consent). Raise MemberInvalid."""
    unknown = set(changes) - set(CONTACT_FIELDS)
    if unknown:
        raise TypeError(f"not contact fields: {sorted(unknown)}")
    member = _lock_members(member.pk)[0]
    _ensure_live(member)
    current = MemberInput(
        name=member.name,
        phone=changes.get("phone", member.phone),
        family_phone=changes.get("family_phone", member.family_phone),
        address=changes.get("address", member.address),
        contact_channel=changes.get("contact_channel", member.contact_channel),
        marketing_consent=changes.get("marketing_consent", member.marketing_consent),
    )
    values = member_input_clean(current, require_contact=not member.id_number_digest)
    before = {name: getattr(member, name) for name in CONTACT_FIELDS}
    for name in CONTACT_FIELDS:
        setattr(member, name, values[name])
    if member.marketing_consent and not before["marketing_consent"]:
        member.marketing_consent_at = timezone.now()
    elif not member.marketing_consent:
        member.marketing_consent_at = None
    changed = {name: [str(before[name]), str(getattr(member, name))]
               for name in CONTACT_FIELDS if before[name] != getattr(member, name)}
    if not changed:
        return member
    member._history_user = actor
    member.save(update_fields=[*CONTACT_FIELDS, "marketing_consent_at", "updated_at"])
    MemberEvent.objects.create(
        member=member, kind=MemberEvent.Kind.CONTACT_CHANGED, actor=actor, store=store,
        data={"fields": sorted(changed)},
    )
    return member


@transaction.atomic
def member_notes_set(*, member: Member, notes: str, actor=None) -> Member:
    """Replace the staff notes of a member (kept in the change history). Raise MemberNotActive."""
    member = _lock_members(member.pk)[0]
    _ensure_live(member)
    notes = (notes or "").strip()
    if notes == member.notes:
        return member
    member.notes = notes
    member._history_user = actor
    member.save(update_fields=["notes", "updated_at"])
    return member


@transaction.atomic
def member_status_set(*, member: Member, status: str, actor, reason: str) -> Member:
    """Freeze, unfreeze or close a member. Raise MemberNotActive for merged members, MemberInvalid."""
    if status not in (Member.Status.ACTIVE, Member.Status.FROZEN, Member.Status.CLOSED):
        raise MemberInvalid(fields={"status": [gettext("Members are merged only through a merge.")]})
    if not reason.strip():
        raise MemberInvalid(fields={"reason": [gettext("Give a reason.")]})
    member = _lock_members(member.pk)[0]
    if member.status == Member.Status.MERGED:
        raise MemberNotActive(member_no=member.member_no, status=member.get_status_display())
    if member.status == status:
        return member
    before = member.status
    member.status = status
    member._history_user = actor
    member._change_reason = reason.strip()[:100]
    member.save(update_fields=["status", "updated_at"])
    MemberEvent.objects.create(
        member=member, kind=MemberEvent.Kind.STATUS_CHANGED, actor=actor,
        data={"from": before, "to": status, "reason": reason.strip()},
    )
    return member


def _ensure_live(member: Member) -> None:
    if member.status not in LIVE_STATUSES:
        raise MemberNotActive(member_no=member.member_no, status=member.get_status_display())


# --- tags -----------------------------------------------------------------------------------


@dataclass
class TagResult:
    added: int = 0
    already: int = 0
    unknown: list[str] = field(default_factory=list)


@transaction.atomic
def members_tag(*, tag: Tag, member_nos: Iterable[str], actor=None) -> TagResult:
    """Tag members by their numbers; numbers that match no member are returned, not fatal.

    A merged record's number tags the member it was merged into.
    """
    wanted = list(dict.fromkeys(str(no).strip() for no in member_nos if str(no).strip()))
    result = TagResult()
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start:start + 5000]
        rows = Member.objects.filter(member_no__in=chunk).values_list("member_no", "pk", "merged_into_id")
        found.update((member_no, survivor_pk(pk, merged_into)) for member_no, pk, merged_into in rows)
    result.unknown = [no for no in wanted if no not in found]
    targets = sorted(set(found.values()))
    for start in range(0, len(targets), 5000):
        chunk = targets[start:start + 5000]
        already = set(MemberTag.objects.filter(tag=tag, member_id__in=chunk).values_list("member_id", flat=True))
        new_rows = [MemberTag(member_id=pk, tag=tag, added_by=actor) for pk in chunk if pk not in already]
        MemberTag.objects.bulk_create(new_rows, batch_size=2000, ignore_conflicts=True)
        MemberEvent.objects.bulk_create(
            [MemberEvent(member_id=row.member_id, kind=MemberEvent.Kind.TAGGED, actor=actor, data={"tag": tag.name})
             for row in new_rows],
            batch_size=2000,
        )
        result.added += len(new_rows)
        result.already += len(already)
    return result


def survivor_pk(pk: int, merged_into: int | None) -> int:
    """The member a merged record went into, following a chain (A into B, later B into C: C)."""
    for _step in range(10):
        if merged_into is None:
            return pk
        pk = merged_into
        merged_into = Member.objects.filter(pk=pk).values_list("merged_into_id", flat=True).get()
    return pk


@transaction.atomic
def members_untag(*, tag: Tag, members: Iterable[Member]) -> int:
    deleted, _ = MemberTag.objects.filter(tag=tag, member__in=list(members)).delete()
    return deleted


# --- duplicates and merge ---------------------------------------------------------------------

# Other apps move what they own from a merged member to the survivor (purchases, cards ...):
# each mover is called as mover(merged=..., survivor=..., request=...) inside the merge transaction.
MERGE_MOVERS: list[Callable] = []


def merge_mover(function: Callable) -> Callable:
    MERGE_MOVERS.append(function)
    return function


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def merge_candidates_add(pairs: Iterable[tuple[int, int]], *, reason: str) -> int:
    """Record candidate pairs; a pair already known (open, merged or dismissed) is left alone."""
    wanted = {_pair(a, b) for a, b in pairs if a != b}
    if not wanted:
        return 0
    known = set(
        MergeCandidate.objects.filter(member_a_id__in={a for a, _b in wanted})
        .values_list("member_a_id", "member_b_id")
    )
    rows = [MergeCandidate(member_a_id=a, member_b_id=b, reason=reason) for a, b in wanted - known]
    # ignore_conflicts: a concurrent run may have recorded the same pair meanwhile.
    MergeCandidate.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return len(rows)


def _pairs_within(groups: dict, names: dict | None = None) -> list[tuple[int, int]]:
    """All pairs inside each group; with `names` (pk -> name), only pairs whose names differ."""
    pairs = []
    for ids in groups.values():
        ids = sorted(ids)[:20]  # a phone shared by a whole clan is reviewed through its first 20 records
        pairs.extend((a, b) for i, a in enumerate(ids) for b in ids[i + 1:]
                     if names is None or names[a] != names[b])
    return pairs


def merge_candidates_detect(*, batch: int = 2000) -> int:
    """Find records that may be one person; return how many new candidates were recorded.

    Same phone with different names, same name and birth date, and the same
    legacy number under the same name in two sources. Staff review them; nothing
    is merged here.
    """
    live = Member.objects.filter(status__in=LIVE_STATUSES)
    created = 0
    phones = (
        live.exclude(phone="").values("phone").annotate(names=Count("name", distinct=True))
        .filter(names__gt=1).values_list("phone", flat=True)
    )
    # Only the differently named records of a shared phone: the reason promises different names.
    created += _detect_in_groups(live, "phone", phones.iterator(), ("phone",),
                                 MergeCandidate.Reason.SAME_PHONE, batch, different_names=True)
    name_births = (
        live.exclude(birth_date=None).values("name", "birth_date").annotate(n=Count("pk"))
        .filter(n__gt=1).values_list("name", "birth_date")
    )
    created += _detect_in_groups(live, None, name_births.iterator(), ("name", "birth_date"),
                                 MergeCandidate.Reason.SAME_NAME_BIRTH, batch)
    numbers = (
        MemberIdentity.objects.filter(member__status__in=LIVE_STATUSES).values("external_no")
        .annotate(members=Count("member", distinct=True)).filter(members__gt=1)
        .values_list("external_no", flat=True)
    )
    for chunk in _chunks(numbers.iterator(), batch):
        groups: dict = {}
        for no, member_id, name in MemberIdentity.objects.filter(
            external_no__in=chunk, member__status__in=LIVE_STATUSES
        ).values_list("external_no", "member_id", "member__name"):
            groups.setdefault((no, name), set()).add(member_id)
        created += merge_candidates_add(_pairs_within(groups), reason=MergeCandidate.Reason.SAME_LEGACY_NO)
    return created


def _detect_in_groups(live, single_field, keys, fields, reason, batch, different_names=False) -> int:
    created = 0
    for chunk in _chunks(keys, batch):
        if single_field:
            condition = Q(**{f"{single_field}__in": chunk})
        else:
            condition = Q()
            for key in chunk:
                condition |= Q(**dict(zip(fields, key, strict=True)))
        groups: dict = {}
        names: dict = {}
        for row in live.filter(condition).values_list("pk", "name", *fields):
            groups.setdefault(row[2:], set()).add(row[0])
            names[row[0]] = row[1]
        created += merge_candidates_add(_pairs_within(groups, names if different_names else None), reason=reason)
    return created


def _chunks(iterator, size):
    chunk = []
    for item in iterator:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@transaction.atomic
def merge_candidate_dismiss(*, candidate: MergeCandidate, actor) -> MergeCandidate:
    """Record that two records are different people; the pair is not proposed again."""
    candidate = MergeCandidate.objects.select_for_update().get(pk=candidate.pk)
    if candidate.status != MergeCandidate.Status.OPEN:
        raise MergeNotPossible(reason=gettext("this pair was already decided."))
    candidate.status = MergeCandidate.Status.DISMISSED
    candidate.decided_by = actor
    candidate.decided_at = timezone.now()
    candidate.save(update_fields=["status", "decided_by", "decided_at"])
    return candidate


def _ensure_mergeable(survivor: Member, merged: Member) -> None:
    if survivor.pk == merged.pk:
        raise MergeNotPossible(reason=gettext("a member cannot be merged into itself."))
    for member in (survivor, merged):
        if member.status not in LIVE_STATUSES:
            raise MergeNotPossible(reason=gettext("%(member)s is %(status)s.")
                                   % {"member": member.member_no, "status": member.get_status_display()})


def ids_conflict(survivor: Member, merged: Member) -> bool:
    return bool(survivor.id_number_digest and merged.id_number_digest
                and survivor.id_number_digest != merged.id_number_digest)


@transaction.atomic
def member_merge_request(
    *, survivor: Member, merged: Member, requested_by, reason: str, candidate: MergeCandidate | None = None
) -> ApprovalRequest:
    """Merge `merged` into `survivor`: at once, or after approval when their ID numbers differ.

    Raise MergeNotPossible, ReasonRequired, ApprovalAlreadyPending.
    """
    _ensure_mergeable(survivor, merged)
    action = MEMBER_MERGE_CONFLICTING_IDS if ids_conflict(survivor, merged) else MEMBER_MERGE
    return approval_request_submit(
        action=action,
        subject=merged,
        requested_by=requested_by,
        reason=reason,
        payload={
            "survivor_id": survivor.pk,
            "survivor_no": survivor.member_no,
            "merged_id": merged.pk,
            "candidate_id": candidate.pk if candidate else None,
        },
    )


_FILL_FIELDS = ("phone", "family_phone", "birth_date", "address")


def _member_merge_execute(request: ApprovalRequest) -> None:
    survivor_id, merged_id = request.payload["survivor_id"], request.payload["merged_id"]
    members = dict(zip(sorted((survivor_id, merged_id)), _lock_members(*sorted((survivor_id, merged_id))),
                       strict=True))
    survivor, merged = members[survivor_id], members[merged_id]
    _ensure_mergeable(survivor, merged)
    actor = request.decided_by or request.requested_by
    moved_points = merged.points
    moved = {
        "identities": MemberIdentity.objects.filter(member=merged).update(member=survivor),
        "cards": MemberCard.objects.filter(member=merged).update(member=survivor),
        "points": moved_points,
    }
    tag_ids = set(MemberTag.objects.filter(member=merged).values_list("tag_id", flat=True))
    MemberTag.objects.bulk_create(
        [MemberTag(member=survivor, tag_id=tag_id, added_by=actor) for tag_id in tag_ids], ignore_conflicts=True
    )
    MemberTag.objects.filter(member=merged).delete()
    moved["tags"] = len(tag_ids)
    if moved_points:
        note = gettext("merge, approval #%(id)s") % {"id": request.pk}
        points_post(member=merged, points=-moved_points, kind=PointsEntry.Kind.MERGE_OUT, operator=actor,
                    reason=note, cause=request)
        points_post(member=survivor, points=moved_points, kind=PointsEntry.Kind.MERGE_IN, operator=actor,
                    reason=note, cause=request)
    for mover in MERGE_MOVERS:
        mover(merged=merged, survivor=survivor, request=request)

    take_id = merged.id_number_digest and not survivor.id_number_digest
    id_values = {name: getattr(merged, name) for name in ("id_type", "id_number_digest", "id_number_sealed",
                                                           "id_number_masked", "gender", "birth_date")}
    merged.status = Member.Status.MERGED
    merged.merged_into = survivor
    merged._history_user = actor
    merged._change_reason = gettext("merged into %(member_no)s") % {"member_no": survivor.member_no}
    merged.save(update_fields=["status", "merged_into", "updated_at"])

    fields = []
    for name in _FILL_FIELDS:
        if not getattr(survivor, name) and getattr(merged, name):
            setattr(survivor, name, getattr(merged, name))
            fields.append(name)
    if take_id:
        for name, value in id_values.items():
            setattr(survivor, name, value)
        fields.extend(id_values)
    if fields:
        survivor._history_user = actor
        survivor._change_reason = gettext("absorbed %(member_no)s") % {"member_no": merged.member_no}
        survivor.save(update_fields=[*dict.fromkeys(fields), "updated_at"])

    MemberEvent.objects.create(member=merged, kind=MemberEvent.Kind.MERGED_INTO, actor=actor,
                               data={"survivor": survivor.member_no, "approval": request.pk})
    if subscriptions_for(EventType.MEMBER_MERGED):
        now = timezone.now()
        event_emit(EventType.MEMBER_MERGED, subject=f"member:{survivor.member_no}", at=now, data={
            "member_no": survivor.member_no,
            "merged_member_no": merged.member_no,
            "created_at": timezone.localtime(now).isoformat(),
        })
    MemberEvent.objects.create(member=survivor, kind=MemberEvent.Kind.ABSORBED, actor=actor,
                               data={"merged": merged.member_no, "approval": request.pk, "moved": moved})
    pair = _pair(survivor.pk, merged.pk)
    MergeCandidate.objects.filter(member_a_id=pair[0], member_b_id=pair[1]).update(
        status=MergeCandidate.Status.MERGED, decided_by=actor, decided_at=timezone.now()
    )
    # Other open candidates naming the merged record now concern the survivor.
    MergeCandidate.objects.filter(Q(member_a=merged) | Q(member_b=merged), status=MergeCandidate.Status.OPEN).update(
        status=MergeCandidate.Status.DISMISSED, decided_by=actor, decided_at=timezone.now()
    )


registry.register(MEMBER_MERGE, label=_("Merge two members"), execute=_member_merge_execute)
registry.register(
    MEMBER_MERGE_CONFLICTING_IDS, label=_("Merge two members with different ID numbers"),
    execute=_member_merge_execute,
)

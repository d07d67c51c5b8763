"""Missed-receipt claims (补积分) to look at: demo members who claimed a walk-in receipt (WALKIN-...) at the desk
of SUPER001 or DEPT001 (members registered there first), so the admin's list of claims shows them and the
members' points show the credit.

Claims go through `purchase_claim`, as the desk does. A receipt already claimed (or a member already holding a
claim) is left alone, so a second run adds nothing.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from membership.demo import DEMO_SOURCE
from membership.models import Member, Purchase, PurchaseClaim
from membership.services.claims import claim_window_days, purchase_claim
from stores.models import Store

# (store, how many of its demo members claim a receipt)
CLAIMS = [("SUPER001", 2), ("DEPT001", 1)]


@transaction.atomic
def claims_seed() -> int:
    """Claim a few recent walk-in receipts for demo members at those stores (members registered there first);
    return how many claims were made."""
    since = timezone.now() - timedelta(days=claim_window_days() - 1)
    made = 0
    for code, count in CLAIMS:
        store = Store.objects.select_related("format").filter(code=code).first()
        if store is None:
            continue
        need = count - PurchaseClaim.objects.filter(store=store, member__identities__source=DEMO_SOURCE).count()
        if need <= 0:
            continue
        unclaimed = Member.objects.filter(status=Member.Status.ACTIVE, identities__source=DEMO_SOURCE,
                                          purchase_claims__isnull=True).order_by("pk")
        members = list(unclaimed.filter(registered_store=store)[:need])
        members += list(unclaimed.exclude(pk__in=[member.pk for member in members])[:need - len(members)])
        receipts = list(
            Purchase.objects.filter(store=store, member__isnull=True, receipt_no__startswith="WALKIN-",
                                    occurred_at__gte=since, returned_amount=0)
            .order_by("receipt_no").values_list("receipt_no", flat=True)[:need]
        )
        for member, receipt_no in zip(members, receipts, strict=False):
            purchase_claim(store=store, receipt_no=receipt_no, member=member, channel=PurchaseClaim.Channel.DESK)
            made += 1
    return made

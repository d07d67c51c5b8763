"""Closing a store goes through a second person's approval: the request, and what the approval carries out.

The store's own rules and write (may it close on that day; close it and stop its terminals) are stores.services;
this module puts them behind the approval engine, so stores never imports approvals. Registered when the
approvals app loads (approvals.apps).
"""

from datetime import date

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.services import approval_request_submit
from stores.models import Store
from stores.services import store_close, store_close_check

__all__ = ["STORE_CLOSE", "store_close_request"]

# The action's name predates this module (approval policies name it): it stays "stores.store_close".
STORE_CLOSE = "stores.store_close"


def store_close_request(*, store: Store, requested_by, reason: str, closed_on: date) -> ApprovalRequest:
    """Ask headquarters to close a store. Raise StoreAlreadyClosed, InvalidClosingDate, ReasonRequired."""
    store_close_check(store=store, closed_on=closed_on)
    return approval_request_submit(
        action=STORE_CLOSE,
        subject=store,
        requested_by=requested_by,
        reason=reason,
        payload={"closed_on": closed_on.isoformat()},
        store=store,
    )


def _store_close_execute(request: ApprovalRequest) -> None:
    store_close(
        store_id=int(request.object_id),
        closed_on=date.fromisoformat(request.payload["closed_on"]),
        cause=gettext("approval #%(id)s") % {"id": request.pk},
    )


registry.register(STORE_CLOSE, label=_("Close a store"), execute=_store_close_execute)

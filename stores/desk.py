"""The frame of every service desk page (/desk/): login, the desk permission and the store the clerk acts for.

The desk is a store's screen: membership's and cards' desk pages are wrapped in `desk_view`, which sets
`request.desk_store` (the store the clerk acts for), `request.desk_stores` (those they may choose) and
`request.desk_can_switch`.
"""

from functools import wraps

from django import forms
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from stores.models import Store
from stores.queries import user_store_ids

DESK_PERMISSION = "membership.use_service_desk"
SESSION_STORE_KEY = "desk_store_id"


class StoreChoiceForm(forms.Form):
    store = forms.ModelChoiceField(
        label=gettext_lazy("Store of this desk"),
        queryset=None,
        empty_label=None,
        error_messages={"invalid_choice": gettext_lazy("Choose one of your stores.")},
    )

    def __init__(self, *args, stores, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["store"].queryset = stores


def desk_stores(user):
    """The stores a clerk may act for at the desk: their own, or every open one for HQ."""
    store_ids = user_store_ids(user)
    stores = Store.objects.exclude(status=Store.Status.CLOSED).order_by("code")
    return stores if store_ids is None else stores.filter(pk__in=store_ids)


def _current_store(request: HttpRequest, stores) -> Store | None:
    chosen = request.session.get(SESSION_STORE_KEY)
    if chosen is not None:
        store = stores.filter(pk=chosen).first()
        if store is not None:
            return store
        # The clerk was moved to other stores since choosing this one.
        del request.session[SESSION_STORE_KEY]
    only = list(stores[:2])
    return only[0] if len(only) == 1 else None


def forbidden(request: HttpRequest, reason: str) -> HttpResponse:
    """The desk's refusal page, saying why and whom to ask."""
    return render(request, "desk/forbidden.html", {"reason": reason}, status=403)


def store_choice_page(request: HttpRequest, form: StoreChoiceForm, status: int = 200) -> HttpResponse:
    next_url = request.POST.get("next") or request.get_full_path()
    return render(request, "desk/choose_store.html", {"form": form, "next": next_url}, status=status)


def desk_view(view=None, *, needs_store: bool = True):
    """Login, the desk permission and a store to act for, the same for every desk page."""

    def decorate(function):
        @wraps(function)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
            if not request.user.has_perm(DESK_PERMISSION):
                return forbidden(request, _("Your account may not use the service desk. "
                                            "Ask your store manager to add you to the service desk group."))
            stores = desk_stores(request.user)
            store_count = stores.count()
            request.desk_stores = stores
            request.desk_store = _current_store(request, stores)
            request.desk_can_switch = store_count > 1
            if request.desk_store is None and needs_store:
                if not store_count:
                    return forbidden(request, _("Your account is not assigned to a store. "
                                                "Ask headquarters to add your store to your staff profile."))
                return store_choice_page(request, StoreChoiceForm(stores=stores))
            return function(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate

"""Who may see which stores: the one place the staff scope is decided."""

from django.db.models import QuerySet

from stores.models import StaffProfile, Store


def user_is_hq(user) -> bool:
    """Superusers and HQ staff see every store."""
    if not user or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    profile = _profile(user)
    return profile is not None and profile.scope == StaffProfile.Scope.HQ


def user_store_ids(user) -> frozenset[int] | None:
    """The ids of the stores a user works in, or None for every store (HQ)."""
    if user_is_hq(user):
        return None
    cache_name = "_store_ids_cache"
    if not hasattr(user, cache_name):
        profile = _profile(user)
        ids = frozenset(profile.stores.values_list("pk", flat=True)) if profile else frozenset()
        setattr(user, cache_name, ids)
    return getattr(user, cache_name)


def scope_queryset(queryset: QuerySet, user, store_path: str) -> QuerySet:
    """Limit a queryset to the rows of the user's stores.

    `store_path` is the lookup from the model to its store ("store",
    "terminal__store"); "" means the rows are stores themselves. A user with
    no staff profile and no superuser flag sees nothing.
    """
    store_ids = user_store_ids(user)
    if store_ids is None:
        return queryset
    lookup = f"{store_path}__in" if store_path else "pk__in"
    return queryset.filter(**{lookup: store_ids})


def user_can_see_store(user, store: Store | None) -> bool:
    store_ids = user_store_ids(user)
    return store_ids is None or (store is not None and store.pk in store_ids)


def stores_visible_to(user) -> QuerySet:
    return scope_queryset(Store.objects.all(), user, "")


def _profile(user) -> StaffProfile | None:
    try:
        return user.staff_profile
    except StaffProfile.DoesNotExist:
        return None

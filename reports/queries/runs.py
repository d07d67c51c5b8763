"""Which report runs a user may see: headquarters every run; store staff the runs of their stores and the runs
they asked for themselves (always within their stores)."""

from django.db.models import Q, QuerySet

from reports.models import ReportRun
from stores.queries import user_store_ids

PERMISSION_VIEW = "reports.view_reportrun"


def user_may_view_reports(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff
                and user.has_perm(PERMISSION_VIEW))


def runs_visible_to(user, queryset: QuerySet | None = None) -> QuerySet:
    queryset = ReportRun.objects.all() if queryset is None else queryset
    if not user or not user.is_authenticated:
        return queryset.none()
    store_ids = user_store_ids(user)
    if store_ids is None:
        return queryset
    # A store user's own runs count only their stores (the filter form refuses any other), so they are theirs.
    return queryset.filter(Q(store__in=store_ids) | Q(requested_by=user))

"""The report archive (reports:archive): the runs a manager may see, newest first, each downloadable; and the
download itself (reports:download), logged every time. A store manager sees and downloads only their stores'."""

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from reports.kinds import KIND_CHOICES
from reports.queries.runs import runs_visible_to, user_may_view_reports
from reports.services import run_download_log
from stores.queries import user_is_hq

RUNS_PER_PAGE = 50


def _allowed(request):
    """None when the user may see reports; else the answer: the login page, or 403."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), login_url="admin:login")
    if not user_may_view_reports(request.user):
        raise PermissionDenied
    return None


@require_GET
def archive(request):
    refusal = _allowed(request)
    if refusal is not None:
        return refusal
    runs = runs_visible_to(request.user).select_related("store", "definition").order_by("-started_at", "-pk")
    kind = request.GET.get("kind", "")
    kinds = dict(KIND_CHOICES)
    if kind in kinds:
        runs = runs.filter(kind=kind)
    else:
        kind = ""
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        **admin.site.each_context(request), "title": _("Report archive"), "page": page, "kinds": KIND_CHOICES,
        "kind": kind,
        # The definitions are headquarters' screen (reports/admin.py).
        "may_define": user_is_hq(request.user) and request.user.has_perm("reports.view_reportdefinition"),
    }
    return render(request, "reports/archive.html", context)


@require_GET
def download(request, pk: int):
    refusal = _allowed(request)
    if refusal is not None:
        return refusal
    run = runs_visible_to(request.user).filter(pk=pk).first()
    if run is None or not run.downloadable:
        raise Http404
    try:
        handle = run.file.open("rb")
    except OSError:
        raise Http404 from None
    run_download_log(run=run, user=request.user, ip=request.META.get("REMOTE_ADDR"))
    filename = f"{run.title}_{run.period_start:%Y%m%d}-{run.period_end:%Y%m%d}.xlsx"
    return FileResponse(handle, as_attachment=True, filename=filename)

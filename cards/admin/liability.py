"""The prepaid card liability page (预收资金与存管): outstanding balances, escrow and the revenue alert.

It belongs to no model, so it is added to the admin site itself: one URL in front of the site's own, and one
entry in the cards section of the index and the side navigation, both only for those who may see it. Headquarters
only: the outstanding balances and escrow are the group's figures, not a store's.
"""


from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import formats, timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from openpyxl import Workbook

from cards.models import Card
from cards.queries.liability import LiabilityReport, liability_report, user_may_view_liability
from core.admin import admin_page_add, local_time
from core.files import xlsx_cells, xlsx_money, xlsx_response

TITLE = _("Prepaid card liability (预收资金与存管)")
URL_NAME = "cards_liability"


def liability_view(request, *, site: admin.AdminSite):
    """Outstanding balances per issuer now and at the last four quarter ends, escrow due, alert; Excel export."""
    if not user_may_view_liability(request.user):
        raise PermissionDenied
    report = liability_report()
    if request.GET.get("export") == "xlsx":
        return _liability_workbook(report)
    return TemplateResponse(request, "admin/cards/liability/liability.html", {
        **site.each_context(request),
        "title": TITLE,
        "opts": Card._meta,
        "report": report,
        "export_url": "?export=xlsx",
    })


def _quarter_label(day) -> str:
    return formats.date_format(day, "Y-m-d")


def _liability_workbook(report: LiabilityReport) -> HttpResponse:
    """The page as an Excel file (openpyxl write-only: rows go straight to the file)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(gettext("Prepaid card liability"))
    sheet.append([gettext("as of"), local_time(report.as_of)])
    sheet.append([])
    sheet.append([gettext("issuer"), gettext("prepaid card filing number")]
                 + [gettext("outstanding at %(day)s") % {"day": _quarter_label(day)} for day in report.quarter_ends]
                 + [gettext("outstanding now"), gettext("escrow at %(rate)s%%") % {"rate": report.escrow_rate_percent}])
    def money(*amounts) -> list:
        return [xlsx_money(amount) for amount in amounts]

    for row in report.rows:
        sheet.append(xlsx_cells(sheet, [row.label, row.filing_no, *money(*row.at_quarter_ends, row.outstanding,
                                                                         row.escrow)]))
    sheet.append(xlsx_cells(sheet, [gettext("Total"), "", *money(*report.at_quarter_ends, report.outstanding,
                                                                 report.escrow_before_guarantee)]))
    sheet.append([])
    sheet.append([gettext("escrow rate"), report.escrow_rate])
    for label, amount in (
        (gettext("card balances at the previous quarter end"), report.card_base),
        (gettext("pickup vouchers at the previous quarter end"), report.voucher_base),
        (gettext("outstanding at the previous quarter end"), report.escrow_base),
        (gettext("less guarantee"), report.guarantee),
        (gettext("required escrow this quarter"), report.escrow),
    ):
        sheet.append(xlsx_cells(sheet, [label, xlsx_money(amount)]))
    if report.alert:
        sheet.append([gettext("alert"), report.alert.message])
    if report.alert_off:
        sheet.append([gettext("alert"), report.alert_off])
    sheet.append([gettext("pickup vouchers"), gettext(
        "Included in the figures above at the price paid for what is left: remaining units × the batch's price per "
        "voucher ÷ the voucher's units, expired vouchers too.")])
    voucher_rows = [row for row in report.rows if any(row.vouchers_at_quarter_ends) or row.vouchers]
    if voucher_rows:
        sheet.append([])
        sheet.append([gettext("of which pickup vouchers"), ""]
                     + [gettext("at %(day)s") % {"day": _quarter_label(day)} for day in report.quarter_ends]
                     + [gettext("now")])
        for row in voucher_rows:
            sheet.append(xlsx_cells(sheet, [row.label, row.filing_no, *money(*row.vouchers_at_quarter_ends,
                                                                             row.vouchers)]))
    return xlsx_response(workbook, f"prepaid-liability-{timezone.localdate():%Y%m%d}.xlsx")


admin_page_add(
    admin.site, app_label="cards", route="cards/liability/", url_name=URL_NAME, view=liability_view, title=TITLE,
    object_name="Liability", may_view=user_may_view_liability,
)

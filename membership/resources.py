"""django-import-export resources for members: the admin's small-file import (with preview) and exports.

The import goes through membership.legacy, the same rules and writes as
`import_legacy_members`; the admin only shows its outcome row by row.
"""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources
from import_export.results import Error, Result, RowResult

from core.admin import SafeExportMixin
from core.errors import DomainError
from core.pii import InvalidPersonalData, mask_phone, pii_decrypt
from core.tabular import TableRow, cell_text, header_map
from membership.legacy import MEMBER_COLUMNS, Outcome, members_import, source_clean, source_from_filename
from membership.models import Member

_ROW_TYPES = {
    Outcome.NEW: RowResult.IMPORT_TYPE_NEW,
    Outcome.UPDATE: RowResult.IMPORT_TYPE_UPDATE,
    Outcome.UNCHANGED: RowResult.IMPORT_TYPE_SKIP,
}


class MemberImportResource(resources.Resource):
    """Legacy members from a small file in the admin; `source` defaults to the file name, as for the command."""

    member_no = fields.Field(column_name="member_no")
    name = fields.Field(column_name="name")
    phone = fields.Field(column_name="phone")
    id_number = fields.Field(column_name="id_number")
    birth_date = fields.Field(column_name="birth_date")
    tier_code = fields.Field(column_name="tier_code")
    points = fields.Field(column_name="points")
    store_code = fields.Field(column_name="store_code")
    registered_at = fields.Field(column_name="registered_at")

    class Meta:
        model = Member
        fields = tuple(column.name for column in MEMBER_COLUMNS)

    def __init__(self, *, source: str = "", **kwargs):
        super().__init__(**kwargs)
        self.source = source

    def get_diff_headers(self):
        return [column.name for column in MEMBER_COLUMNS]

    def import_data(self, dataset, dry_run=False, raise_errors=False, use_transactions=None,
                    collect_failed_rows=False, rollback_on_validation_errors=False, **kwargs):
        """Import all or nothing: any invalid row is shown with its column, and nothing is written."""
        result = Result()
        result.diff_headers = self.get_diff_headers()
        result.total_rows = len(dataset)
        try:
            columns = header_map(dataset.headers or [], MEMBER_COLUMNS)
            source = (source_clean(self.source) if self.source
                      else source_from_filename(str(kwargs.get("file_name") or "ADMIN")))
        except DomainError as error:
            result.append_base_error(Error(ValidationError(str(error))))
            if raise_errors:
                raise
            return result
        positions = columns.positions.items()

        def rows():
            for index, data in enumerate(dataset, start=2):
                cells = tuple(cell_text(value) for value in data)
                if any(cells):
                    yield TableRow(number=index, cells=cells,
                                   values={name: cells[i] if i < len(cells) else "" for name, i in positions})

        def on_row(row, outcome, member_no):
            row_result = RowResult()
            row_result.import_type = _ROW_TYPES[outcome]
            row_result.diff = [row.values.get(name, "") for name in result.diff_headers]
            row_result.row_values = dict(row.values)
            row_result.object_repr = f"{member_no} {row.values.get('name', '')}"
            row_result.member_no = member_no
            result.append_row_result(row_result)
            result.increment_row_result_total(row_result)

        def on_reject(row, rejection):
            row_result = RowResult()
            row_result.import_type = RowResult.IMPORT_TYPE_INVALID
            row_result.validation_error = ValidationError(rejection.errors)
            row_result.row_values = dict(row.values)
            result.append_invalid_row(row.number, row.values, row_result.validation_error)
            result.append_row_result(row_result)
            result.increment_row_result_total(row_result)

        report = members_import(rows=rows(), source=source, dry_run=dry_run, skip_invalid=False,
                                actor=kwargs.get("user"), on_reject=on_reject, on_row=on_row)
        if report.written:
            members = Member.objects.in_bulk([getattr(r, "member_no", "") for r in result.rows],
                                             field_name="member_no")
            for row_result in result.rows:
                row_result.instance = members.get(getattr(row_result, "member_no", ""))
                row_result.add_instance_info(row_result.instance)
        return result


class MemberExportResource(SafeExportMixin, resources.ModelResource):
    """Members for a spreadsheet: phone and ID number masked unless full_personal_data=True.

    Whoever passes full_personal_data=True checks membership.export_personal_data
    and writes the personal-data audit log.
    """

    member_no = fields.Field(attribute="member_no", column_name="member_no")
    name = fields.Field(attribute="name", column_name="name")
    phone = fields.Field(column_name="phone")
    id_number = fields.Field(column_name="id_number")
    gender = fields.Field(column_name="gender")
    birth_date = fields.Field(attribute="birth_date", column_name="birth_date")
    tier_code = fields.Field(attribute="tier__code", column_name="tier_code")
    points = fields.Field(attribute="points", column_name="points")
    store_code = fields.Field(attribute="registered_store__code", column_name="store_code")
    registered_at = fields.Field(attribute="registered_at", column_name="registered_at")
    status = fields.Field(column_name="status")
    # The export page's names of the columns that read no field of the member (core/exports.py).
    labels = {"id_number": _("ID number"), "tier_code": _("tier"), "store_code": _("registered store")}

    class Meta:
        model = Member
        fields = ("member_no", "name", "phone", "id_number", "gender", "birth_date", "tier_code", "points",
                  "store_code", "registered_at", "status")
        export_order = fields

    def __init__(self, *, full_personal_data: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.full_personal_data = full_personal_data

    def get_queryset(self):
        return Member.objects.select_related("tier", "registered_store")

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("tier", "registered_store")

    def dehydrate_phone(self, member: Member) -> str:
        return member.phone if self.full_personal_data else mask_phone(member.phone)

    def dehydrate_id_number(self, member: Member) -> str:
        if not self.full_personal_data:
            return member.id_number_masked
        try:
            return pii_decrypt(member.id_number_sealed)
        except InvalidPersonalData:
            # A number sealed under a retired key cannot be opened; the export still goes out, masked.
            return member.id_number_masked

    def dehydrate_gender(self, member: Member) -> str:
        return str(member.get_gender_display())

    def dehydrate_status(self, member: Member) -> str:
        return str(member.get_status_display())

"""The filter every report page and the dashboard share: the period, a format and a store, within what the user may
see. `ReportFilterForm.params()` turns a valid form into the `ReportParams` a report is built for."""

from datetime import date
from urllib.parse import urlencode

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.dates import month_last_full
from core.forms import IsoDateInput
from reports.frame import ReportParams
from stores.models import Format, Store
from stores.queries import stores_visible_to, user_store_ids

# The longest period a page is built for: a year and a month compared with the year before fits, a decade does not.
PERIOD_DAYS_MAX = 400
# Dates outside these years are typing mistakes (and a year before 1 has no "same days a year earlier").
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
FILTER_FIELDS = ("start", "end", "format", "store")


def period_default(today: date | None = None) -> tuple[date, date]:
    """The period a page opens on: the last full calendar month (this month up to yesterday is empty on the 1st)."""
    return month_last_full(today or timezone.localdate())


class StoreSelect(forms.Select):
    """A select of hundreds of stores grouped by format, each option written inline: Django's own writes every
    option through a template of its own, a tenth of a second for the group's stores."""

    template_name = "reports/store_select.html"


class ReportFilterForm(forms.Form):
    """Period, format and store of a report page. A missing or empty date is the default period's; a store or
    format the user may not see is an error on the form, never a page of its numbers."""

    start = forms.DateField(label=_("period starts on"), widget=IsoDateInput(), required=False)
    end = forms.DateField(label=_("period ends on"), widget=IsoDateInput(), required=False)
    format = forms.ChoiceField(label=_("format"), required=False,
                               error_messages={"invalid_choice": _("Choose one of the formats listed.")})
    store = forms.ChoiceField(label=_("store"), required=False, widget=StoreSelect,
                              error_messages={"invalid_choice": _("Choose one of your stores.")})

    def __init__(self, *, user, data=None, today: date | None = None):
        self.user = user
        self.default_start, self.default_end = period_default(today)
        values = {name: "" for name in FILTER_FIELDS}
        if data is not None:
            values.update({name: data.get(name, "") for name in FILTER_FIELDS})
        values["start"] = values["start"] or self.default_start.isoformat()
        values["end"] = values["end"] or self.default_end.isoformat()
        super().__init__(data=values)
        self.user_store_ids = user_store_ids(user)
        self.is_hq = self.user_store_ids is None
        stores = stores_visible_to(user).select_related("format").order_by("format__code", "code")
        self.visible_stores = {store.code: store for store in stores}
        formats = Format.objects.order_by("code")
        if not self.is_hq:
            formats = formats.filter(pk__in={store.format_id for store in self.visible_stores.values()})
        self.visible_formats = {fmt.code: fmt for fmt in formats}
        self.fields["format"].choices = [("", _("All formats")), *((code, fmt.name)
                                                                    for code, fmt in self.visible_formats.items())]
        by_format: dict[int, tuple[str, list]] = {}
        for code, store in self.visible_stores.items():
            by_format.setdefault(store.format_id, (store.format.name, []))[1].append((code, f"{code} {store.name}"))
        self.fields["store"].choices = [("", _("All stores") if self.is_hq else _("All my stores")),
                                        *by_format.values()]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if not (FIRST_DAY <= start <= LAST_DAY and FIRST_DAY <= end <= LAST_DAY):
                raise forms.ValidationError(
                    _("Choose days between {first} and {last}.").format(first=FIRST_DAY.isoformat(),
                                                                        last=LAST_DAY.isoformat()))
            if end < start:
                self.add_error("end", _("The period ends before it starts."))
            elif (end - start).days + 1 > PERIOD_DAYS_MAX:
                self.add_error("end", _("A period is at most {days} days.").format(days=PERIOD_DAYS_MAX))
        store, fmt = self.chosen_store, self.chosen_format
        if store is not None and fmt is not None and store.format_id != fmt.pk:
            self.add_error("store", _("This store is not of the chosen format."))
        return cleaned

    @property
    def chosen_store(self) -> Store | None:
        return self.visible_stores.get(self.cleaned_data.get("store") or "")

    @property
    def chosen_format(self) -> Format | None:
        return self.visible_formats.get(self.cleaned_data.get("format") or "")

    def params(self) -> ReportParams:
        """The parameters of a valid form: the chosen store, or the chosen format's stores, or every store the
        user may see (None for headquarters), always within the user's stores."""
        if not self.is_valid():
            raise ValueError("the parameters of a filter that is not valid")
        store, fmt = self.chosen_store, self.chosen_format
        if store is not None:
            store_ids = (store.pk,)
        elif fmt is not None:
            store_ids = tuple(sorted(s.pk for s in self.visible_stores.values() if s.format_id == fmt.pk))
        elif self.is_hq:
            store_ids = None
        else:
            store_ids = tuple(sorted(self.user_store_ids))
        return ReportParams(
            start=self.cleaned_data["start"], end=self.cleaned_data["end"], store_ids=store_ids,
            format_codes=(fmt.code,) if fmt is not None else (),
        )

    def scope_stores(self) -> list[Store]:
        """The stores a valid form's page is about, for its title: the chosen one, or the user's own (store
        staff); empty for headquarters looking at every store or a format."""
        if self.chosen_store is not None:
            return [self.chosen_store]
        if self.is_hq or self.chosen_format is not None:
            return []
        return list(self.visible_stores.values())

    def query_string(self) -> str:
        """The valid form's filters as a query string, for links to other report pages with the same filters."""
        return urlencode({
            "start": self.cleaned_data["start"].isoformat(), "end": self.cleaned_data["end"].isoformat(),
            "format": self.cleaned_data.get("format") or "", "store": self.cleaned_data.get("store") or "",
        })

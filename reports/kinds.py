"""Every report kind, in the order staff see them. The labels are here (the models' choices); the numbers are in
`reports/queries/`, whose modules register each kind's build function in `reports.frame.KINDS` when
`kinds_load()` imports them."""

from importlib import import_module

from django.utils.translation import gettext_lazy as _

# code -> (label, the module of reports.queries that builds it)
KIND_LABELS = {
    "cards": (_("Prepaid cards"), "cards"),
    "members": (_("Members"), "members"),
    "tiers": (_("Tiers"), "tiers"),
    "cross_format": (_("Cross-format shopping"), "crossformat"),
    "points": (_("Points"), "points"),
    "staff": (_("Staff registrations"), "staff"),
    "programmes": (_("Campaigns and programmes"), "programmes"),
}
KIND_CHOICES = [(code, label) for code, (label, _module) in KIND_LABELS.items()]


def kinds_load() -> None:
    """Import every query module, so that each registers its kind (once; imports are cached)."""
    for _label, module in KIND_LABELS.values():
        import_module(f"reports.queries.{module}")

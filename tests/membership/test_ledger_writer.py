"""Only membership/services/ledger.py writes a member's points, points owed or their ledgers.

A scan of the project's own apps (not their migrations) for the statements that move a points balance or append
a points ledger row. A member inserted with an opening balance (the legacy import, the demo data) is not a
movement: its `migration` entry is written through the ledger module.
"""

import re
from pathlib import Path

from django.apps import apps
from django.conf import settings

LEDGER_MODULE = Path("membership/services/ledger.py")
WRITES = {
    "points=F(...)": re.compile(r"\bpoints(_debt)?\s*=\s*F\("),
    "SET points": re.compile(r"\bSET\s+points"),
    ".update(points=...)": re.compile(r"\.update\([^)]*\bpoints(_debt)?\s*="),
    "bulk_update of points": re.compile(r"bulk_update\([^)]*[\"']points(_debt)?[\"']"),
    "save of points": re.compile(r"update_fields\s*=\s*\[[^\]]*[\"']points(_debt)?[\"']"),
    "a new ledger row": re.compile(r"(?<!class )\bPoints(Debt)?Entry\("),
    "PointsEntry.objects write": re.compile(
        r"\bPoints(Debt)?Entry\.objects\.(create|bulk_create|get_or_create|update_or_create|update|bulk_update)\b"
    ),
    "raw SQL on a points ledger table": re.compile(r"[\"'\s]membership_points(debt)?entry\b"),
}


def _project_sources() -> list[Path]:
    base = Path(settings.BASE_DIR)
    sources = []
    for config in apps.get_app_configs():
        root = Path(config.path)
        if base not in root.parents:
            continue
        sources.extend(path for path in root.rglob("*.py") if "migrations" not in path.relative_to(root).parts)
    return sorted(sources)


def _writes_outside_the_ledger() -> list[str]:
    base = Path(settings.BASE_DIR)
    found = []
    for path in _project_sources():
        relative = path.relative_to(base)
        if relative == LEDGER_MODULE:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for name, pattern in WRITES.items():
                if pattern.search(line):
                    found.append(f"{relative}:{number}: {name}: {line.strip()}")
    return found


def test_only_the_ledger_module_writes_points_balances_and_their_ledgers():
    assert _writes_outside_the_ledger() == []


def test_the_scan_sees_the_ledger_module_writes():
    # given: the patterns above, applied to the ledger module itself
    text = (Path(settings.BASE_DIR) / LEDGER_MODULE).read_text(encoding="utf-8")

    # then: each kind of write the module holds is recognised, so an empty scan elsewhere means something
    for name in ("points=F(...)", "SET points", ".update(points=...)", "bulk_update of points", "a new ledger row",
                 "PointsEntry.objects write"):
        assert WRITES[name].search(text), name

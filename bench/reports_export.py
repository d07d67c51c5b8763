"""Benchmark: a report's detail written to Excel by `reports.excel.report_workbook_write` against the same rows
written by bare openpyxl in write-only mode (no styles, no summary, no charts): the floor of writing those rows
into an .xlsx with the library the project already uses for large files.

Each variant runs in its own subprocess (so one's memory cannot hide in the other's), writes a temporary file and
reports its wall time, its CPU time (the steadier figure on a shared machine) and its peak resident memory
(getrusage ru_maxrss) beside the memory after start-up, before any row was made. The rows come from the same
generator in both: (date, store code, format, three Decimal amounts, an int count), the shape of the cards
report's detail. No database is needed: the synthetic report asks for every store (headquarters), so nothing is
read.

    .venv/bin/python bench/reports_export.py                    # 1,000,000 rows (the issue's target) and 100,000
    .venv/bin/python bench/reports_export.py --rows 200000      # a quick run

Targets (the issue): at most 1.5x the openpyxl time; memory flat (the peak at 1,000,000 rows about the peak at
100,000 rows).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("report", "openpyxl")
STORES = [(f"DEPT{n:03d}", "百货") for n in range(1, 41)] + [(f"SUPER{n:03d}", "超市") for n in range(1, 61)]


def rows(count: int):
    """The detail's rows: one per store and day, with amounts spread over a few thousand yuan."""
    first = date(2026, 1, 1)
    days = [first + timedelta(days=n) for n in range(365)]
    cents = [Decimal(n * 7919 % 1_000_000).scaleb(-2) for n in range(10_007)]
    stores = len(STORES)
    for index in range(count):
        code, format_name = STORES[index % stores]
        yield (days[(index // stores) % 365], code, format_name, cents[index % 10_007],
               cents[(index * 3) % 10_007], cents[(index * 7) % 10_007], index % 500)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def run_report(count: int, path: str) -> int:
    from reports.excel import report_workbook_write
    from reports.frame import Column, Figure, Report, ReportParams, Table

    report = Report(kind="cards", title="售卡明细基准", params=ReportParams(start=date(2026, 1, 1),
                                                                         end=date(2026, 12, 31)))
    report.figures = [Figure("rows", "行数", count, "count")]
    report.detail = Table("detail", "明细", [
        Column("day", "日期", "date"), Column("store", "门店"), Column("format", "业态"),
        Column("sales", "售卡金额", "money"), Column("walk_in", "散客", "money"), Column("group", "团购", "money"),
        Column("orders", "订单数", "count"),
    ], rows(count))
    return report_workbook_write(report, path)


def run_openpyxl(count: int, path: str) -> int:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("明细")
    sheet.append(["日期", "门店", "业态", "售卡金额", "散客", "团购", "订单数"])
    written = 0
    for row in rows(count):
        sheet.append(row)
        written += 1
    workbook.save(path)
    return written


def child(variant: str, count: int) -> None:
    """Run one variant in this process and print its figures as one JSON line."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import openpyxl  # noqa: F401  (imported before the baseline, as the report's libraries are)
    import xlsxwriter  # noqa: F401
    from django.utils import translation

    translation.activate("zh-hans")
    baseline = rss_mb()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"{variant}.xlsx")
        started, cpu = time.perf_counter(), time.process_time()
        written = (run_report if variant == "report" else run_openpyxl)(count, path)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        size = os.path.getsize(path)
    print(json.dumps({"variant": variant, "rows": written, "seconds": seconds, "cpu_seconds": cpu,
                      "baseline_mb": baseline, "peak_mb": rss_mb(), "file_mb": size / 1_048_576}))


def measure(variant: str, count: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", variant, "--rows", str(count)],
                          check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="detail rows of the large run")
    parser.add_argument("--small", type=int, default=100_000, help="detail rows of the run memory is compared with")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant; the fastest counts")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows)
        return

    print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    found: dict = {}
    for count in (args.small, args.rows):
        for variant in VARIANTS:
            runs = [measure(variant, count) for _round in range(args.rounds)]
            best = min(runs, key=lambda run: run["seconds"])
            found[variant, count] = best
            print(f"{variant:9} {count:>10,} rows  {best['seconds']:8.2f} s (CPU {best['cpu_seconds']:7.2f} s)  "
                  f"peak {best['peak_mb']:7.1f} MB "
                  f"(start-up {best['baseline_mb']:.1f} MB)  file {best['file_mb']:.1f} MB")
    ratio = found["report", args.rows]["seconds"] / found["openpyxl", args.rows]["seconds"]
    cpu_ratio = found["report", args.rows]["cpu_seconds"] / found["openpyxl", args.rows]["cpu_seconds"]
    small, large = found["report", args.small], found["report", args.rows]
    growth = (large["peak_mb"] - large["baseline_mb"]) - (small["peak_mb"] - small["baseline_mb"])
    print(f"ratio report / openpyxl write-only at {args.rows:,} rows: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU "
          f"(target <= 1.5x)")
    print(f"report memory above start-up: {small['peak_mb'] - small['baseline_mb']:.1f} MB at {args.small:,} rows, "
          f"{large['peak_mb'] - large['baseline_mb']:.1f} MB at {args.rows:,} rows (growth {growth:+.1f} MB; flat)")
    print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Benchmark: import_legacy_members on PostgreSQL against a plain COPY of the same file.

Generates a realistic legacy member file (Chinese names, valid ID numbers for
~70% of rows, phones for ~80%, households sharing a phone, points, a few
invalid rows and people listed twice), imports it into a fresh database with
`manage.py import_legacy_members --skip-invalid` in a subprocess, and measures
wall time and the subprocess's peak RSS. Then it COPYs the same CSV into an
unlogged table of text columns, the floor any import of that file stands on.

    .venv/bin/python bench/import_members.py --rows 1000000

Target (the issue): 1,000,000 rows in at most 60 s with peak memory under 300 MB.
"""

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.pii import resident_id_check_digit  # noqa: E402

SERVER = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
DATABASE = "retail_bench_import"
HEADER = ["会员号", "姓名", "手机号", "身份证号", "出生日期", "等级", "积分", "注册门店", "注册时间"]

# The most common surnames, most frequent first; the weights follow their rough shares.
SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
SURNAME_WEIGHTS = [1 / (rank + 8) for rank in range(len(SURNAMES))]
GIVEN = list(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红娥玲芬燕彬建国建华志强海波鹏辉宇浩"
    "文斌俊杰晓明婷雪梅琳丹慧颖欣怡子涵梓轩浩然一诺雨桐佳琪思远嘉怡博文晨阳天佑昊然紫萱可馨金凤淑珍"
    "德福荣贵长林福生秋菊春梅冬梅国庆卫东红梅凤英桂兰玉兰秀兰桂芳永红小红小平小军"
)
REGIONS = ["110101", "110105", "310101", "310115", "440103", "440305", "500103", "500106", "510104", "510107",
           "320102", "330102", "420102", "610103", "210102", "370102"]
TIERS = ["NORMAL"] * 70 + ["SILVER"] * 15 + ["GOLD"] * 10 + ["PLATINUM"] * 5 + ["普卡"] * 3 + ["金卡"] * 2


def ric(rng: random.Random, birth: date) -> str:
    first17 = f"{rng.choice(REGIONS)}{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    return first17 + resident_id_check_digit(first17)


def mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"


def generate(path: Path, rows: int, stores: list[str], *, seed: int = 20240601) -> dict:
    """Write the legacy file; return what it holds, to check the import's counts against."""
    rng = random.Random(seed)
    stats = {"rows": rows, "invalid": 0, "repeat_person": 0, "points": 0}
    recent_ids: list[tuple[str, str, date]] = []
    household_phone = None
    household_left = 0
    start = datetime(2005, 1, 1)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for index in range(rows):
            roll = rng.random()
            if household_left == 0:
                household_left = rng.choice((1, 1, 1, 2, 2, 3, 4))
                household_phone = mobile(rng)
            household_left -= 1
            name = rng.choices(SURNAMES, SURNAME_WEIGHTS)[0] + "".join(rng.sample(GIVEN, rng.choice((1, 2, 2))))
            birth = date(1935, 1, 1) + timedelta(days=rng.randint(0, 70 * 365))
            id_number = ""
            if roll < 0.005 and recent_ids:
                # The same person registered twice in the old system, under another number.
                id_number, name, birth = rng.choice(recent_ids)
                stats["repeat_person"] += 1
            elif rng.random() < 0.70:
                id_number = ric(rng, birth)
                if len(recent_ids) < 5000:
                    recent_ids.append((id_number, name, birth))
                else:
                    recent_ids[rng.randrange(5000)] = (id_number, name, birth)
            phone = household_phone if rng.random() < 0.80 else ""
            points = rng.randint(1, 50_000) if rng.random() < 0.6 else ""
            if roll > 0.999:
                # Legacy data is messy: a wrong check digit or a phone cut short.
                if id_number:
                    id_number = id_number[:17] + ("0" if id_number[17] != "0" else "1")
                else:
                    phone = phone[:7] or "12345"
                stats["invalid"] += 1
            elif points:
                stats["points"] += points
            registered = start + timedelta(seconds=rng.randint(0, 19 * 365 * 86400))
            writer.writerow([
                f"{index + 1:09d}", name, phone, id_number,
                birth.isoformat() if id_number or rng.random() < 0.3 else "",
                rng.choice(TIERS), points, rng.choice(stores) if rng.random() < 0.9 else "",
                registered.strftime("%Y-%m-%d %H:%M:%S"),
            ])
    return stats


def process_tree(pid: int) -> list[int]:
    """pid and every process below it, from /proc."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB; PSS shares each page among the processes that map it."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def cpu_seconds_of(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watch:
    """Samples a running import: the memory of its whole process tree, and the CPU of its PostgreSQL backend.

    wait4's ru_maxrss is the largest single process; a pool of workers would hide behind it. Here the peak is
    of the sum over the tree, sampled every 50 ms: RSS counts shared pages (code, and a forked worker's pages
    it has not written) once per process, PSS shares them out, so their sum is the memory the tree holds.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_rss_kb = self.peak_pss_kb = self.peak_processes = 0
        self.backends: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            while not self.stop.wait(0.05):
                pids = process_tree(self.pid)
                sizes = [memory_kb(pid) for pid in pids]
                self.peak_rss_kb = max(self.peak_rss_kb, sum(rss for rss, _pss in sizes))
                self.peak_pss_kb = max(self.peak_pss_kb, sum(pss for _rss, pss in sizes))
                self.peak_processes = max(self.peak_processes, len([size for size in sizes if size[0]]))
                for (backend,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [DATABASE]
                ):
                    seconds = cpu_seconds_of(backend)
                    if seconds is not None:
                        self.backends[backend] = seconds

    def __enter__(self) -> "Watch":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()


def admin_execute(sql: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def manage(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="Keep the benchmark database for a look afterwards.")
    parser.add_argument(
        "--existing", type=int, default=0, metavar="N",
        help="Import N members from another legacy file first (not timed), so that the measured import runs "
             "beside existing members: the path of every import after the first.",
    )
    options = parser.parse_args()

    env = {**os.environ, "DATABASE_URL": f"{SERVER}/{DATABASE}", "PYTHONUNBUFFERED": "1"}
    admin_execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin_execute(f"CREATE DATABASE {DATABASE}")
    try:
        manage(["migrate", "--noinput", "-v", "0"], env)
        manage(["shell", "-c", "from stores import demo; demo.seed_stores()"], env)
        with psycopg.connect(f"{SERVER}/{DATABASE}") as conn:
            stores = [code for (code,) in conn.execute("SELECT code FROM stores_store ORDER BY code")]

        earlier = (0, 0)  # identities and ledger points already there before the measured import
        with tempfile.TemporaryDirectory(prefix="bench_import_") as tmp:
            if options.existing:
                other_file = Path(tmp) / "legacy_pos.csv"
                generate(other_file, options.existing, stores, seed=20230101)
                manage(["import_legacy_members", str(other_file), "--skip-invalid"], env)
                with psycopg.connect(f"{SERVER}/{DATABASE}") as conn:
                    conn.execute("ANALYZE")
                    earlier = conn.execute(
                        "SELECT (SELECT count(*) FROM membership_memberidentity),"
                        " (SELECT coalesce(sum(points), 0) FROM membership_pointsentry)"
                    ).fetchone()
                print(f"imported {options.existing:,} members from another file first", flush=True)
            path = Path(tmp) / "legacy_crm.csv"
            started = time.perf_counter()
            stats = generate(path, options.rows, stores)
            print(f"generated {options.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) "
                  f"in {time.perf_counter() - started:.1f} s", flush=True)

            command = [sys.executable, "manage.py", "import_legacy_members", str(path), "--skip-invalid",
                       "--errors", str(Path(tmp) / "errors.csv")]
            load = os.getloadavg()[0]
            started = time.perf_counter()
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            with Watch(process.pid) as watch:
                _pid, status, usage = os.wait4(process.pid, 0)
            import_seconds = time.perf_counter() - started
            load_after = os.getloadavg()[0]
            output = process.stdout.read().decode() + process.stderr.read().decode()
            if status != 0:
                raise SystemExit(f"import failed:\n{output}")
            # ru_maxrss is the largest single process of the tree (the import, or a worker it waited for).
            largest_mb = usage.ru_maxrss / 1024
            peak_mb = max(watch.peak_rss_kb / 1024, largest_mb)
            pss_mb = watch.peak_pss_kb / 1024
            postgres_cpu = sum(watch.backends.values())
            cpu_seconds = usage.ru_utime + usage.ru_stime
            print(output.strip(), flush=True)

            with psycopg.connect(f"{SERVER}/{DATABASE}") as conn:
                members, identities, points, balance = conn.execute(
                    "SELECT (SELECT count(*) FROM membership_member), (SELECT count(*) FROM membership_memberidentity),"
                    " (SELECT coalesce(sum(points), 0) FROM membership_pointsentry),"
                    " (SELECT coalesce(sum(points), 0) FROM membership_member)"
                ).fetchone()
                expected_identities = options.rows - stats["invalid"] + earlier[0]
                assert identities == expected_identities, (identities, expected_identities)
                assert points == balance, (points, balance)
                assert points - earlier[1] == stats["points"], (points, earlier[1], stats["points"])
                columns = ", ".join(f"c{i} text" for i in range(len(HEADER)))
                conn.execute(f"CREATE UNLOGGED TABLE bench_copy ({columns})")
                conn.commit()
                started = time.perf_counter()
                with conn.cursor() as cursor, cursor.copy(
                    "COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)"
                ) as copy, open(path, "rb") as handle:
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
                conn.commit()
                copy_seconds = time.perf_counter() - started

        print(f"members {members:,}, identities {identities:,}, points {points:,}; "
              f"load average {load:.1f} on {os.cpu_count()} cores when the import started, "
              f"{load_after:.1f} when it ended")
        print(f"rows {options.rows:,} | import {import_seconds:.1f} s (its own CPU {cpu_seconds:.1f} s, "
              f"PostgreSQL backend CPU {postgres_cpu:.1f} s) | "
              f"peak {peak_mb:.0f} MB (sum of RSS over {watch.peak_processes} process(es); PSS {pss_mb:.0f} MB; "
              f"largest single process {largest_mb:.0f} MB) | "
              f"COPY {copy_seconds:.1f} s | ratio import/COPY {import_seconds / copy_seconds:.1f}")
    finally:
        if not options.keep:
            admin_execute(f"DROP DATABASE IF EXISTS {DATABASE}")


if __name__ == "__main__":
    main()

"""What the benchmarks share: a fresh PostgreSQL database of their own, with Django set up on it."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")


def _drop(server: str, database: str, *, create: bool = False) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if create:
            admin.execute(f"CREATE DATABASE {database}")


@contextmanager
def bench_database(server: str, database: str, *, keep: bool, environ: dict[str, str] | None = None) -> Iterator[str]:
    """Create `database` afresh on `server`, set Django up on it (DEBUG off) and yield the server URL.

    `environ` adds or overrides settings read from the environment. The database
    is dropped at the end unless `keep`.
    """
    server = server.rstrip("/")
    _drop(server, database, create=True)
    os.environ["DATABASE_URL"] = f"{server}/{database}"
    os.environ["DEBUG"] = "false"
    os.environ.update(environ or {})
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    try:
        yield server
    finally:
        from django.db import connections

        connections.close_all()
        if not keep:
            _drop(server, database)


def migrate_with_stores() -> None:
    """Migrate the benchmark's database and load the reference stores."""
    from django.core.management import call_command

    from stores.demo import seed_stores

    call_command("migrate", verbosity=0)
    seed_stores()

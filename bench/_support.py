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


def cache_option(parser) -> None:
    """--cache-url: the product's cache, as its deployment sets CACHE_URL."""
    parser.add_argument(
        "--cache-url", default="",
        help="CACHE_URL of the product's workers, e.g. rediscache://127.0.0.1:6379/13, as docs/deployment.md section 8 "
             "asks of more than one web process (default: none; each worker's own memory, the unknown-card-number "
             "counts in the database). A Redis database given here is emptied first.")


def cache_environ(url: str) -> dict[str, str]:
    """The environment for --cache-url, a Redis database emptied first (its counts are keyed by terminal ids)."""
    if not url:
        return {}
    if url.startswith("rediscache://"):
        import redis

        redis.Redis.from_url("redis://" + url.removeprefix("rediscache://")).flushdb()
    return {"CACHE_URL": url}


def migrate_with_stores() -> None:
    """Migrate the benchmark's database and load the reference stores."""
    from django.core.management import call_command

    from stores.demo import seed_stores

    call_command("migrate", verbosity=0)
    seed_stores()


def statements_sent(call, *, pgconn=None, names: dict[str, str] | None = None) -> list[str]:
    """Run `call()`; return each statement it sent to PostgreSQL, BEGIN and COMMIT included.

    On Django's default connection, or on `pgconn` (a psycopg connection's pgconn) when given. Read from
    libpq's trace of the connection: every frontend Query (the simple protocol), and every Bind (one execution
    of the extended protocol, a prepared statement's included), so nothing the driver sends on its own
    (transaction control) is missed. `names` maps prepared statements' names to their text: pass the same dict
    to a first call that prepares them and to the one counted.
    """
    import tempfile

    if pgconn is None:
        from django.db import connection

        connection.ensure_connection()
        pgconn = connection.connection.pgconn
    names = {} if names is None else names
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        try:
            call()
        finally:
            pgconn.untrace()
        trace.seek(0)
        sent, parsed = [], ""
        for line in trace.read().decode(errors="replace").splitlines():
            fields = line.split("\t")
            if len(fields) < 5 or fields[1] != "F":
                continue
            message, text = fields[3], fields[4].strip()
            if message == "Query":
                sent.append(text)
            elif message == "Parse":  # '"<statement name>" "<text>" ...'
                name, _, rest = text.partition(" ")
                parsed = rest.strip()
                names[name] = parsed
            elif message == "Bind":  # '"<portal>" "<statement name>" ...'
                name = text.split(" ")[1] if " " in text else '""'
                sent.append(names.get(name, parsed) if name != '""' else parsed)
        return sent


def wsgi_call(application, request: bytes) -> tuple[str, bytes]:
    """Send one raw HTTP/1.1 request (head and body, as a client writes it) to a WSGI application in this process."""
    import io

    head, body = request.split(b"\r\n\r\n", 1)
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _protocol = request_line.split(" ")
    path, _, query = target.partition("?")
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    for line in header_lines:
        name, value = line.split(": ", 1)
        name = name.upper().replace("-", "_")
        environ[name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"] = value
    statuses = []
    content = b"".join(application(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    return statuses[0], content


# The POS hot path's targets against the Django anchor, on this machine at 32 clients (medians of the rounds).
TARGET_RATIO = 0.6
TARGET_POSTGRES_RATIO = 1.3
TARGET_HOT_P99_MS = 100


def hot_path_targets(ratio: float, postgres_ratio: float, p99_ms: float, *, write: str) -> None:
    """Print the hot path's three targets, each met or MISSED (`write`: "debit", "purchase")."""
    checks = [
        (f"throughput {ratio:.2f}x the Django anchor (target >= {TARGET_RATIO})", ratio >= TARGET_RATIO),
        (f"PostgreSQL CPU per {write} {postgres_ratio:.2f}x the Django anchor's (target <= {TARGET_POSTGRES_RATIO})",
         postgres_ratio <= TARGET_POSTGRES_RATIO),
        (f"p99 {p99_ms:.1f} ms (target <= {TARGET_HOT_P99_MS} ms)", p99_ms <= TARGET_HOT_P99_MS),
    ]
    for text, met in checks:
        print(f"target: {text}: {'met' if met else 'MISSED'}")

"""Django's PostgreSQL backend with a health check that costs no round trip while the connection is plainly alive.

With CONN_HEALTH_CHECKS Django asks a reused connection `SELECT 1` before each request's first query, so the
first request after a database restart reconnects instead of failing. On the POS hot path that is one round trip
in six. A server that ends a connection (a restart, a terminated backend, a crash) sends its last message and
closes the socket, so on an idle connection the socket becomes readable; while nothing is waiting to be read and
libpq calls the connection open and idle, it is alive as far as a round trip could tell. Anything else (something
to read: the server's goodbye or, rarely, a notice; a transaction open; a closed or broken handle) is decided by
Django's `SELECT 1` as before.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq

__all__ = ["DatabaseWrapper"]


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        if self.connection is None:
            return False
        try:
            pgconn = self.connection.pgconn
            idle = (not self.connection.closed and pgconn.status == pq.ConnStatus.OK
                    and pgconn.transaction_status == pq.TransactionStatus.IDLE)
            if idle:
                poller = select.poll()
                poller.register(pgconn.socket, select.POLLIN | select.POLLPRI)
                idle = not poller.poll(0)
        except Exception:  # noqa: BLE001 - a handle that cannot even be looked at is asked the usual way
            idle = False
        return True if idle else super().is_usable()

"""How a POS terminal proves who it is (kept apart from the views: DRF's settings import it)."""

import math

from django.conf import settings
from django.core.cache import caches
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, permissions, throttling
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from core.limits import cache_counter_hit
from stores import services
from stores.models import Terminal


class TerminalPrincipal:
    """What `request.user` is for a POS call: the terminal, acting as its store."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, terminal: Terminal):
        self.terminal = terminal
        self.store = terminal.store
        self.pk = None

    def __str__(self) -> str:
        return str(self.terminal)


class TerminalKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <terminal key>`; request.auth is the Terminal."""

    keyword = b"bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword or len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Use the header Authorization: Bearer <terminal key>."))
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("The terminal key is not valid.")) from None
        terminal = services.terminal_for_key(key)
        if terminal is None:
            raise exceptions.AuthenticationFailed(_("The terminal key is unknown or disabled."))
        services.terminal_touch(terminal=terminal, interval_seconds=settings.TERMINAL_TOUCH_INTERVAL)
        return TerminalPrincipal(terminal), terminal

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class IsTerminal(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, Terminal)


class TerminalRateThrottle(throttling.SimpleRateThrottle):
    """At most POS_RATE_LIMIT calls per terminal in any window of its length (`6000/min`).

    Each call is one atomic count in the default cache: shared by every worker when the cache is (Redis, one
    round trip), kept by each process otherwise. The sliding window is estimated from two fixed ones, the
    current window's count plus the previous one's weighted by how much of it the sliding window still covers,
    rounded up, so a burst at the end of one window is still counted at the start of the next. A refused call is
    taken off the count again, as DRF's own throttles never count one.

    A subclass may name more counts of the same cache to read in that round trip (`counts_read`); they are
    then in `read_back`.
    """

    scope = "terminal"
    read_back: dict[str, int]

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, Terminal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}

    def counts_read(self, request) -> tuple[str, ...]:
        return ()

    def allow_request(self, request, view):
        self.read_back = {}
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        window, into = divmod(self.timer(), self.duration)
        current_key, previous_key = f"{key}:{int(window)}", f"{key}:{int(window) - 1}"
        reads = self.counts_read(request)
        current, (previous, *others) = cache_counter_hit(current_key, seconds=self.duration * 2,
                                                         reads=(previous_key, *reads))
        self.read_back = dict(zip(reads, others, strict=True))
        if current + math.ceil(previous * (self.duration - into) / self.duration) <= self.num_requests:
            return True
        try:
            caches["default"].decr(current_key)
        except ValueError:  # the count expired meanwhile
            pass
        self.retry_after = self.duration - into
        return False

    def wait(self):
        return getattr(self, "retry_after", None)

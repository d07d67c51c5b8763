"""How a POS terminal proves who it is (kept apart from the views: DRF's settings import it)."""

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, permissions, throttling
from rest_framework.authentication import BaseAuthentication, get_authorization_header

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
    scope = "terminal"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, Terminal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}

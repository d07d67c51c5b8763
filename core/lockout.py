"""The login lockout's handler for django-axes (AXES_HANDLER); the client address comes from core/http.py."""

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt


class LoginLockoutHandler(AxesDatabaseHandler):
    """axes' database handler, except that a successful login forgets only that user's failures at that address.

    Failures are counted per client address over all usernames (AXES_LOCKOUT_PARAMETERS). The stock handler would
    clear every failure of the address on any successful login, so whoever holds one valid account could keep
    guessing other accounts' passwords from the same address without ever being locked.
    """

    def reset_user_attempts(self, request, credentials: dict | None = None) -> int:
        deleted, _ = AccessAttempt.objects.filter(
            username=get_client_username(request, credentials), ip_address=request.axes_ip_address,
        ).delete()
        return deleted

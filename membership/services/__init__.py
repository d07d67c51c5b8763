"""Every write that changes a member, their tiers, points, purchases or gifts.

One module per topic; this package re-exports the public functions so callers
write `from membership.services import member_register`.
"""

from membership.services.members import *  # noqa: F401,F403
from membership.services.members import _SURNAME_INITIAL  # noqa: F401

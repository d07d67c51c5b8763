"""Every write that changes a member, their tiers, points, purchases or gifts.

One module per topic; this package re-exports the public functions so callers
write `from membership.services import member_register`.
"""

from membership.services.adjustments import *  # noqa: F401,F403
from membership.services.expiry import *  # noqa: F401,F403
from membership.services.gifts import *  # noqa: F401,F403
from membership.services.ledger import *  # noqa: F401,F403
from membership.services.members import *  # noqa: F401,F403
from membership.services.members import _SURNAME_INITIAL  # noqa: F401
from membership.services.points import *  # noqa: F401,F403
from membership.services.purchases import *  # noqa: F401,F403
from membership.services.tiers import *  # noqa: F401,F403

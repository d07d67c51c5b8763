"""Every write of coupons, promotions and member days (one module per area)."""

from campaigns.services.coupons import *  # noqa: F401,F403
from campaigns.services.issuing import *  # noqa: F401,F403
from campaigns.services.segments import *  # noqa: F401,F403
from campaigns.services.targeting import *  # noqa: F401,F403
from campaigns.services.templates import *  # noqa: F401,F403

"""Points promotions in the membership paths: imported once (from campaigns/hooks.py) for what it registers.

- every purchase asks `promotion_earn_bonuses` for the multipliers of the promotions it meets;
- every points-to-cash at a till asks `promotion_cash_rates` for a better rate of the day;
- every purchase recorded tells `promotion_credits_record` the points each promotion added, in its transaction;
- every cash-out paid at a promotion's rate tells `promotion_cash_out_record`, in its transaction.
"""

from campaigns.services.promotions import (
    promotion_cash_out_record,
    promotion_cash_rates,
    promotion_credits_record,
    promotion_earn_bonuses,
)
from membership.services.points import cash_rate_provider, earn_bonus_provider, on_points_cashed_out
from membership.services.purchases import on_purchase_recorded

earn_bonus_provider(promotion_earn_bonuses)
cash_rate_provider(promotion_cash_rates)
on_purchase_recorded(promotion_credits_record)
on_points_cashed_out(promotion_cash_out_record)

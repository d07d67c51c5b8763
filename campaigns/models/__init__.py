from campaigns.models.coupons import (  # noqa: F401
    WEEKDAY_CHOICES,
    ZERO,
    Coupon,
    CouponBatch,
    CouponRedemption,
    CouponRule,
    CouponSku,
    CouponTemplate,
    MemberDay,
    PointsPromotion,
    PromotionCashOut,
    PromotionCredit,
    weekday_set,
    word_set,
)
from campaigns.models.targeting import (  # noqa: F401
    CallAttempt,
    CampaignMember,
    Segment,
    SegmentMember,
    SegmentSnapshot,
    TargetedCampaign,
)

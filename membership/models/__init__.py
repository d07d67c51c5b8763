from membership.models.benefits import Benefit, BenefitQuota, BenefitUse, PurchaseClaim  # noqa: F401
from membership.models.loyalty import (  # noqa: F401
    EarnRule,
    Gift,
    GiftRedemption,
    GiftStock,
    GiftStockMovement,
    PointsDebtEntry,
    PointsHold,
    PointsPolicy,
    Purchase,
    PurchaseReturn,
    TierChange,
    TierSubscription,
)
from membership.models.members import (  # noqa: F401
    Member,
    MemberCard,
    MemberEvent,
    MemberIdentity,
    MemberTag,
    MergeCandidate,
    Partner,
    PointsEntry,
    Tag,
    Tier,
)

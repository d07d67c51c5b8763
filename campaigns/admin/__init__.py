"""Admin screens for campaigns, one module per area; each registers its own models."""

from campaigns.admin import coupons, promotions, segments, targeting  # noqa: F401

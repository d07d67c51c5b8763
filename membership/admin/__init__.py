"""Admin screens for members, points, tiers, tags, merges and gifts, one module per area; each registers its own
models.

Every write goes through membership.services: these modules parse what staff typed or uploaded, call a service
and show the result. Member search never scans the table: it uses the exact lookups of membership.queries
(phone, ID digest, member, card and legacy numbers, exact name, pinyin-initials prefix).
"""

from membership.admin import benefits, claims, gifts, members, merges, partners, points, tags, tiers  # noqa: F401

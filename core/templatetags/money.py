"""`{% load money %}`: amounts and points in templates as people read them (core.numbers).

`{{ amount|money }}` gives 68,551.50; `{{ member.points|points }}` gives 12,345.
"""

from django import template

from core.numbers import money_display, points_display

register = template.Library()


@register.filter(is_safe=True)
def money(value) -> str:
    return money_display(value)


@register.filter(is_safe=True)
def points(value) -> str:
    return points_display(value)

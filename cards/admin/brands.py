"""Admin screens for brand partners, brand card programmes and their eligible SKU lists."""

from django.contrib import admin

from cards.models import Brand
from core.admin import BaseAdmin


@admin.register(Brand)
class BrandAdmin(BaseAdmin):
    list_display = ["code", "name", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["code", "name"]

    def has_delete_permission(self, request, obj=None):
        return False

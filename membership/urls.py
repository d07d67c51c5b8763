from django.urls import path

from membership import views, views_benefits, views_claims

app_name = "desk"

urlpatterns = [
    path("", views.search, name="search"),
    path("store/", views.store_choose, name="store"),
    path("register/", views.register, name="register"),
    path("members/<str:member_no>/", views.member_detail, name="member"),
    path("members/<str:member_no>/contact/", views.contact_update, name="contact"),
    path("members/<str:member_no>/gifts/", views.gift_redeem_page, name="gifts"),
    path("members/<str:member_no>/gifts/<int:redemption_id>/", views.gift_slip, name="gift_slip"),
    path("members/<str:member_no>/plus/", views.paid_tier_sale, name="paid_tier"),
    path("members/<str:member_no>/claim/", views_claims.purchase_claim_page, name="claim"),
    path("members/<str:member_no>/benefits/", views_benefits.benefits_page, name="benefits"),
]

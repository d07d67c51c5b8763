"""Coupon pages of the service desk (under /desk/coupons/)."""

from django.urls import path

from campaigns import views

app_name = "coupons"
urlpatterns = [
    path("", views.coupon_search, name="search"),
    path("members/<str:member_no>/", views.member_coupons, name="member"),
]

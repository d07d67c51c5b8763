"""Card pages of the service desk (under /desk/cards/)."""

from django.urls import path

from cards import views

app_name = "cards"
urlpatterns = [
    path("", views.card_sale, name="sale"),
    path("top-up/", views.card_top_up, name="top_up"),
    path("orders/<str:order_no>/", views.receipt, name="receipt"),
]

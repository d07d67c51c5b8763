"""Call-list pages of the service desk (under /desk/calls/)."""

from django.urls import path

from campaigns import views_calls

app_name = "calls"
urlpatterns = [
    path("", views_calls.call_campaigns, name="campaigns"),
    path("<int:campaign_id>/", views_calls.call_list_page, name="list"),
    path("<int:campaign_id>/members/<int:campaign_member_id>/", views_calls.call_member, name="member"),
]

"""Card pages of the service desk (under /desk/cards/)."""

app_name = "cards"
urlpatterns: list = []

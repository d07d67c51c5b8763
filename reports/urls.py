"""The reports' pages under /reports/ (config/urls.py includes this module)."""

from django.urls import path

from reports import views, views_archive

app_name = "reports"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("view/<str:kind>/", views.report, name="report"),
    # --- the archive and downloads (reports/views_archive.py): `archive` and `download` below this line ---
    path("archive/", views_archive.archive, name="archive"),
    path("download/<int:pk>/", views_archive.download, name="download"),
]

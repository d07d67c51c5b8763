from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project itself as an app, last in INSTALLED_APPS: what wires every app together (the demo data of all
    of them, the demo administrator) lives here, above the apps, so no app has to import another to do it."""

    name = "config"
    label = "config"

"""System checks of the project's own settings (run by `manage.py check`, `check --deploy` and every start)."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def demo_secret_key(app_configs, **kwargs):
    """The public demo SECRET_KEY passes Django's length check: refuse it on a deployment."""
    if settings.SECRET_KEY == getattr(settings, "DEMO_SECRET_KEY", None):
        return [checks.Warning(
            "SECRET_KEY is the public demo key.",
            hint="Set SECRET_KEY (and PII_DIGEST_KEY, PII_ENCRYPTION_KEY, CARD_PIN_KEY) once, before the first "
                 "data is stored: see docs/deployment.md, section 3.",
            id="core.W001",
        )]
    return []

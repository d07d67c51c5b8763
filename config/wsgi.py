"""The WSGI application: the POS API (/api/) on its own handler with a short middleware stack, the rest as usual.

A till's call needs none of what the admin's pages need on every request (sessions, CSRF, the logged-in user,
messages, the history's request, the login lockout): under /api/ a request goes through
settings.API_MIDDLEWARE only (security headers, the API frame, the language, Content-Length). The API's
authentication is the terminal key (stores.api_auth), which reads none of them. Django's test client runs the
full stack, which the API must (and does) answer the same under.
"""

import os
import threading

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

API_PREFIX = "/api/"
_loading = threading.Lock()


class ApiWSGIHandler(WSGIHandler):
    """A WSGI handler whose middleware is settings.API_MIDDLEWARE."""

    def load_middleware(self, is_async=False):
        from django.conf import settings

        # Django builds the chain from settings.MIDDLEWARE; it is read only here, once, while the handler is made.
        with _loading:
            full = settings.MIDDLEWARE
            settings.MIDDLEWARE = settings.API_MIDDLEWARE
            try:
                super().load_middleware(is_async)
            finally:
                settings.MIDDLEWARE = full


class PathDispatcher:
    """Send /api/ to the API's handler and everything else to the site's."""

    def __init__(self, site, api):
        self.site, self.api = site, api

    def __call__(self, environ, start_response):
        handler = self.api if environ.get("PATH_INFO", "").startswith(API_PREFIX) else self.site
        return handler(environ, start_response)


application = PathDispatcher(get_wsgi_application(), ApiWSGIHandler())

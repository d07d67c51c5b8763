"""The error pages of the back office, in the user's language and the admin's look (templates/403.html, 404.html).

Django's own answers are English ("403 Forbidden", "Not Found"); the admin's templates need the admin site's
context (its title, the user's links), which Django's handlers do not pass. The 500 page (templates/500.html)
stands alone: Django renders it with no context at all.
"""

from django.contrib import admin
from django.http import HttpResponseForbidden, HttpResponseNotFound
from django.template import loader
from django.views.decorators.csrf import requires_csrf_token


def _page(request, template_name: str) -> str:
    return loader.get_template(template_name).render(admin.site.each_context(request), request)


@requires_csrf_token
def permission_denied(request, exception=None):
    return HttpResponseForbidden(_page(request, "403.html"))


@requires_csrf_token
def page_not_found(request, exception=None):
    return HttpResponseNotFound(_page(request, "404.html"))

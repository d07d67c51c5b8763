"""The production environment of docs/deployment.md passes `check --deploy`; the defaults still serve plain http."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Every variable these tests set, removed first so the caller's own environment cannot change the outcome.
SECURITY_VARIABLES = (
    "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DATABASE_URL", "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER", "TRUSTED_PROXY_COUNT", "TRUSTED_PROXY_HEADER",
    "TRUSTED_PROXY_IPS", "STATIC_MANIFEST", "DJANGO_SETTINGS_MODULE",
    # Set by the browser tests (Playwright drives Django from an event loop); refused by `check --deploy`.
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def _environment(tmp_path, **variables) -> dict:
    environment = {name: value for name, value in os.environ.items() if name not in SECURITY_VARIABLES}
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    environment.update(variables)
    return environment


def _production(tmp_path) -> dict:
    """docs/deployment.md section 2, with SQLite standing in for PostgreSQL."""
    return _environment(
        tmp_path,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="backoffice.example.cn",
        CSRF_TRUSTED_ORIGINS="https://backoffice.example.cn",
        SESSION_COOKIE_SECURE="true",
        CSRF_COOKIE_SECURE="true",
        SECURE_PROXY_SSL_HEADER="true",
        SECURE_SSL_REDIRECT="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
        TRUSTED_PROXY_COUNT="1",
        TRUSTED_PROXY_IPS="127.0.0.1",
        STATIC_MANIFEST="true",
    )


def _run(arguments: list[str], environment: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *arguments], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=120, check=False)


def test_deploy_check_is_clean_with_the_production_environment(tmp_path):
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production(tmp_path))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output
    assert "WARNING" not in output


def test_deploy_check_warns_without_the_https_switches(tmp_path):
    environment = _production(tmp_path)
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"):
        del environment[name]

    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], environment)

    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


DEVELOPMENT_REQUEST = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
response = Client().get("/admin/login/")
print(json.dumps({"status": response.status_code, "hsts": response.get("Strict-Transport-Security"),
                  "redirect": settings.SECURE_SSL_REDIRECT, "proxy_ssl_header": settings.SECURE_PROXY_SSL_HEADER,
                  "trusted_proxies": settings.TRUSTED_PROXY_COUNT,
                  "secure_cookies": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE]}))
"""


def test_the_development_defaults_serve_plain_http_without_a_redirect(tmp_path):
    # given: what `make run` sets, nothing else
    environment = _environment(tmp_path, DEBUG="true", DJANGO_SETTINGS_MODULE="config.settings")

    # when: the admin login page is asked for over plain http
    result = _run(["-c", DEVELOPMENT_REQUEST], environment)

    # then: it is served as it is, with no redirect, no HSTS and no trusted proxy
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "status": 200, "hsts": None, "redirect": False, "proxy_ssl_header": None, "trusted_proxies": 0,
        "secure_cookies": [False, False],
    }


def test_behind_the_proxy_plain_http_is_redirected_and_https_gets_hsts(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True

    plain = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="http")
    secure = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")

    assert (plain.status_code, plain["Location"]) == (301, "https://testserver/admin/login/")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_deploy_check_refuses_the_public_demo_secret_key(tmp_path):
    environment = _production(tmp_path)
    del environment["SECRET_KEY"]

    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], environment)

    assert result.returncode != 0
    assert "core.W001" in result.stdout + result.stderr

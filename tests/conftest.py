import pytest
from django.utils import translation

from stores import demo
from stores.models import StaffProfile, Store
from stores.services import terminal_create
from tests.factories import StaffFactory


def pytest_collection_modifyitems(config, items):
    # Skipped before any fixture runs: a transactional test that set up and flushed the
    # database only to skip itself would still recreate the migrations' rows under new ids.
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith(".postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (row locks, triggers, COPY)")
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def media_in_a_temporary_folder(tmp_path_factory):
    """Files the tests make (report workbooks, finance files, uploads) go to a folder of the run, never media/."""
    from django.conf import settings

    settings.MEDIA_ROOT = str(tmp_path_factory.mktemp("media"))


@pytest.fixture(autouse=True)
def ledgers_hold_after_each_test(request):
    """After every test that used the database, every balance equals its ledger (check_ledgers).

    A scenario that leaves a balance its ledger does not explain fails here even if its own asserts
    passed. Tests of check_ledgers itself break balances on purpose: marked ledgers_broken.
    """
    checked = _uses_database(request) and not request.node.get_closest_marker("ledgers_broken")
    if checked:
        # Asked for here, so the test's database is rolled back or flushed only after the check below.
        request.getfixturevalue("_django_db_helper")
    yield
    if not checked:
        return
    from django.db import connection

    from core.ledgers import ledgers_check

    if connection.needs_rollback:  # the test ended inside a broken transaction: nothing can be read
        return
    report = ledgers_check()
    assert report.ok, "check_ledgers after the test: " + "; ".join(str(d) for d in report.differences)


def _uses_database(request) -> bool:
    names = set(request.fixturenames)
    return bool(names & {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}) \
        or request.node.get_closest_marker("django_db") is not None


@pytest.fixture(autouse=True)
def english_outside_requests():
    """Messages read by tests outside a request are English; pages still follow the request's language."""
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def terminal_keys_forgotten():
    """Each test starts with no terminal kept by key (a rolled-back test's terminals must not be found)."""
    from stores.services import terminal_keys_forget

    terminal_keys_forget()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Tests log many staff users in; the production hasher's million rounds would dominate the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def reference_stores(db):
    """Formats, regions and the demo stores (DEPT001, SUPER001, ...)."""
    demo.seed_stores()
    return Store.objects.all()


@pytest.fixture
def dept001(reference_stores):
    return Store.objects.get(code="DEPT001")


@pytest.fixture
def super001(reference_stores):
    return Store.objects.get(code="SUPER001")


@pytest.fixture
def make_staff(db):
    """Create a staff user in a role group, tied to HQ or to stores: make_staff("name", group=..., stores=[...])."""

    def make(username: str, *, group: str, scope: str = StaffProfile.Scope.STORES, stores=()):
        return StaffFactory(username=username, group=group, scope=scope, stores=stores)

    return make


@pytest.fixture
def hq_admin(db):
    return StaffFactory(username="hq_admin", group="总部管理员", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def hq_approver(db):
    return StaffFactory(username="hq_approver", group="总部管理员", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def dept001_manager(dept001):
    return StaffFactory(username="dept001_manager", group="门店店长", stores=[dept001])


@pytest.fixture
def terminal_with_key(dept001):
    return terminal_create(store_code="DEPT001", name="T1")


@pytest.fixture
def api(client, terminal_with_key):
    """A test client that calls the API as terminal T1 of DEPT001."""
    _, key = terminal_with_key
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


@pytest.fixture
def hq_finance(db):
    """Headquarters staff in the finance role: sees approval requests, holds no approve permission."""
    return StaffFactory(username="hq_finance", group="财务", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def super001_manager(super001):
    return StaffFactory(username="super001_manager", group="门店店长", stores=[super001])


@pytest.fixture
def ledgers_balanced():
    """Call it after a scenario that moves money or points: every balance equals its ledger (check_ledgers)."""
    from core.ledgers import ledgers_check

    def check():
        report = ledgers_check()
        assert report.ok, [str(difference) for difference in report.differences]
        return report

    return check

import pytest
from django.contrib.auth.models import Group, User

from stores import demo
from stores.models import StaffProfile, Store
from stores.services import terminal_create


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


def _staff(username: str, *, group: str, scope: str, stores=()):
    user = User.objects.create_user(username=username, password="pw-for-tests-123", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    profile = StaffProfile.objects.create(user=user, scope=scope)
    profile.stores.set(stores)
    return user


@pytest.fixture
def hq_admin(db):
    return _staff("hq_admin", group="总部管理员", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def hq_approver(db):
    return _staff("hq_approver", group="总部管理员", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def dept001_manager(dept001):
    return _staff("dept001_manager", group="门店店长", scope=StaffProfile.Scope.STORES, stores=[dept001])


@pytest.fixture
def terminal_with_key(dept001):
    return terminal_create(store_code="DEPT001", name="T1")


@pytest.fixture
def api(client, terminal_with_key):
    """A test client that calls the API as terminal T1 of DEPT001."""
    _, key = terminal_with_key
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client

"""Management commands: create_terminal, seed_demo and ensure_admin (CONTRACT section 1)."""

import io

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from stores.models import Format, LegalEntity, StaffProfile, Store, Terminal, hash_api_key


def _run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def _refused(*args, **options) -> CommandError:
    with pytest.raises(CommandError) as raised:
        _run(*args, **options)
    return raised.value


def _assert_one_line_failure(error: CommandError, *words: str):
    message = str(error)
    assert error.returncode != 0
    assert message
    assert "\n" not in message
    for word in words:
        assert word in message


# --- create_terminal ---------------------------------------------------------------------------


def test_create_terminal_prints_the_key_as_the_last_line_and_the_key_opens_the_api(client, dept001):
    # when
    output = _run("create_terminal", "--store", "DEPT001", "--name", "T1")
    # then
    key = output.strip().splitlines()[-1]
    terminal = Terminal.objects.get(store=dept001, name="T1")
    assert terminal.key_hash == hash_api_key(key)
    assert key.startswith(terminal.key_prefix)
    response = client.get("/api/v1/terminal", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    assert response.json() == {"terminal": "T1", "store": {"code": "DEPT001", "name": dept001.name, "format": "DEPT"}}


def test_create_terminal_stores_only_a_hash_of_the_key(dept001):
    output = _run("create_terminal", "--store", "DEPT001", "--name", "T1")

    key = output.strip().splitlines()[-1]
    terminal = Terminal.objects.get()
    assert key not in (terminal.key_hash, terminal.key_prefix)
    assert key not in str(list(Terminal.history.values()))


def test_each_terminal_gets_its_own_key(dept001):
    first = _run("create_terminal", "--store", "DEPT001", "--name", "T1").strip().splitlines()[-1]
    second = _run("create_terminal", "--store", "DEPT001", "--name", "T2").strip().splitlines()[-1]

    assert first != second
    assert Terminal.objects.filter(store=dept001).count() == 2


def test_create_terminal_for_an_unknown_store_fails_with_a_one_line_reason(reference_stores):
    error = _refused("create_terminal", "--store", "NOPE999", "--name", "T1")

    _assert_one_line_failure(error, "NOPE999")
    assert not Terminal.objects.exists()


def test_create_terminal_with_a_name_taken_in_that_store_fails(dept001):
    # given
    _run("create_terminal", "--store", "DEPT001", "--name", "T1")
    # when
    error = _refused("create_terminal", "--store", "DEPT001", "--name", "T1")
    # then
    _assert_one_line_failure(error, "DEPT001", "T1")
    assert Terminal.objects.filter(store=dept001).count() == 1


def test_the_same_terminal_name_may_be_used_in_another_store(dept001, super001):
    _run("create_terminal", "--store", "DEPT001", "--name", "T1")
    _run("create_terminal", "--store", "SUPER001", "--name", "T1")

    assert Terminal.objects.filter(name="T1").count() == 2


def test_create_terminal_for_a_closed_store_fails(dept001):
    Store.objects.filter(pk=dept001.pk).update(status=Store.Status.CLOSED, closed_on=dept001.opened_on)

    error = _refused("create_terminal", "--store", "DEPT001", "--name", "T1")

    _assert_one_line_failure(error, "DEPT001")
    assert not Terminal.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "T" * 51])
def test_create_terminal_with_an_empty_or_over_long_name_fails(dept001, name):
    error = _refused("create_terminal", "--store", "DEPT001", "--name", name)

    _assert_one_line_failure(error, "--name")
    assert not Terminal.objects.exists()


def test_create_terminal_needs_both_options(dept001):
    with pytest.raises(CommandError):
        _run("create_terminal", "--store", "DEPT001")

    assert not Terminal.objects.exists()


def test_create_terminal_trims_the_store_code_and_name(dept001):
    _run("create_terminal", "--store", " DEPT001 ", "--name", " T1 ")

    assert Terminal.objects.get().name == "T1"


# --- seed_demo ------------------------------------------------------------------------------


def _seed_state():
    return {
        "stores": Store.objects.count(),
        "formats": Format.objects.count(),
        "legal_entities": LegalEntity.objects.count(),
        "users": User.objects.count(),
        "profiles": StaffProfile.objects.count(),
        "store_rows": list(Store.objects.order_by("code").values_list("code", "name", "format__code", "region__code")),
    }


@pytest.mark.django_db
def test_seed_demo_loads_the_reference_formats_and_stores():
    # when
    _run("seed_demo", "--members", "0", "--cards", "0")
    # then
    assert set(Format.objects.values_list("code", flat=True)) >= {"DEPT", "SUPER", "ELEC", "AUTO"}
    assert 250 <= Store.objects.count() <= 350
    flagships = {store.code: store for store in Store.objects.filter(code__in=["DEPT001", "SUPER001", "ELEC001",
                                                                                "AUTO001"])}
    assert {code: store.format.code for code, store in flagships.items()} == {
        "DEPT001": "DEPT", "SUPER001": "SUPER", "ELEC001": "ELEC", "AUTO001": "AUTO",
    }
    assert len({store.legal_entity.pk for store in flagships.values()}) == 4


@pytest.mark.django_db
def test_seed_demo_twice_changes_nothing():
    # given
    _run("seed_demo", "--members", "0", "--cards", "0")
    before = _seed_state()
    # when
    _run("seed_demo", "--members", "0", "--cards", "0")
    # then
    assert _seed_state() == before


@pytest.mark.django_db
def test_seed_demo_creates_the_demo_staff_with_their_scopes():
    _run("seed_demo", "--members", "0", "--cards", "0")

    approver = User.objects.get(username="hq_approver")
    manager = User.objects.get(username="dept001_manager")
    assert approver.staff_profile.scope == StaffProfile.Scope.HQ
    assert approver.has_perm("stores.approve_store_close")
    assert manager.staff_profile.scope == StaffProfile.Scope.STORES
    assert list(manager.staff_profile.stores.values_list("code", flat=True)) == ["DEPT001"]
    assert manager.check_password(settings.DEMO_ADMIN_PASSWORD)


@pytest.mark.django_db
def test_seed_demo_once_does_nothing_the_second_time():
    # given: seeded, then a store renamed by hand
    _run("seed_demo", "--once", "--members", "0", "--cards", "0")
    Store.objects.filter(code="DEPT001").update(name="改名的店")
    before = _seed_state()
    # when
    output = _run("seed_demo", "--once", "--members", "0", "--cards", "0")
    # then
    assert "already" in output
    assert _seed_state() == before
    assert Store.objects.get(code="DEPT001").name == "改名的店"


@pytest.mark.django_db
def test_seed_demo_without_once_restores_the_reference_data():
    _run("seed_demo", "--members", "0", "--cards", "0")
    Store.objects.filter(code="DEPT001").update(name="改名的店")

    _run("seed_demo", "--members", "0", "--cards", "0")

    assert Store.objects.get(code="DEPT001").name == "嘉禾百货解放碑店"


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["--members", "--cards"])
def test_seed_demo_refuses_a_negative_count(option):
    error = _refused("seed_demo", option, "-1")

    _assert_one_line_failure(error, option)
    assert not Store.objects.exists()


# --- ensure_admin -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ensure_admin_creates_the_admin_once():
    # when
    first = _run("ensure_admin")
    second = _run("ensure_admin")
    # then
    admin = User.objects.get(username=settings.DEMO_ADMIN_USERNAME)
    assert User.objects.filter(username=settings.DEMO_ADMIN_USERNAME).count() == 1
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(settings.DEMO_ADMIN_PASSWORD)
    assert admin.staff_profile.scope == StaffProfile.Scope.HQ
    assert StaffProfile.objects.filter(user=admin).count() == 1
    assert "Created" in first
    assert "Created" not in second
    assert settings.DEMO_ADMIN_USERNAME in second


@pytest.mark.django_db
def test_ensure_admin_leaves_an_existing_admins_password_alone():
    User.objects.create_superuser(settings.DEMO_ADMIN_USERNAME, password="changed-by-the-owner-1")

    _run("ensure_admin")

    admin = User.objects.get(username=settings.DEMO_ADMIN_USERNAME)
    assert admin.check_password("changed-by-the-owner-1")
    assert admin.staff_profile.scope == StaffProfile.Scope.HQ


@pytest.mark.django_db
def test_ensure_admin_uses_the_configured_login(settings):
    settings.DEMO_ADMIN_USERNAME = "boss"
    settings.DEMO_ADMIN_PASSWORD = "boss-password-123"

    output = _run("ensure_admin")

    assert User.objects.get(username="boss").check_password("boss-password-123")
    assert "boss / boss-password-123" in output

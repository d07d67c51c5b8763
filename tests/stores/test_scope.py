"""Store staff see only their own stores, everywhere in the admin; headquarters sees all."""

import csv
import io

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory

from stores.models import StaffProfile, Store, Terminal
from stores.queries import scope_queryset, user_store_ids
from stores.resources import StoreResource
from stores.services import terminal_create
from tests.factories import StaffFactory

STORE_CHANGELIST = "/admin/stores/store/"
TERMINAL_CHANGELIST = "/admin/stores/terminal/"


def _change_url(store):
    return f"/admin/stores/store/{store.pk}/change/"


def _history_url(store):
    return f"/admin/stores/store/{store.pk}/history/"


def _store_admin():
    return admin.site._registry[Store]


def _export_post_data(request_user):
    """The export form as the admin page submits it: CSV, the store resource, every column ticked."""
    store_admin = _store_admin()
    formats = store_admin.get_export_formats()
    csv_index = next(i for i, f in enumerate(formats) if f().get_title() == "csv")
    data = {"format": str(csv_index), "resource": "0"}
    for field_name in StoreResource().get_export_order():
        data[f"storeresource_{field_name}"] = "on"
    return data


def _exported_codes(response):
    content = response.content.decode("utf-8-sig")
    return [row["code"] for row in csv.DictReader(io.StringIO(content))]


@pytest.fixture
def terminals(dept001, super001):
    dept_terminal, _ = terminal_create(store_code=dept001.code, name="T-DEPT")
    super_terminal, _ = terminal_create(store_code=super001.code, name="T-SUPER")
    return dept_terminal, super_terminal


# --- the store list -------------------------------------------------------------------------


def test_store_manager_sees_only_their_store_in_the_store_list(client, dept001_manager, dept001, super001):
    # given
    client.force_login(dept001_manager)
    # when
    response = client.get(STORE_CHANGELIST)
    # then
    assert response.status_code == 200
    listed = [store.code for store in response.context["cl"].queryset]
    assert listed == ["DEPT001"]
    content = response.content.decode()
    assert dept001.name in content
    assert super001.name not in content


def test_hq_admin_sees_every_store_in_the_store_list(client, hq_admin, dept001, super001):
    client.force_login(hq_admin)

    response = client.get(STORE_CHANGELIST)

    assert response.status_code == 200
    listed = set(response.context["cl"].queryset.values_list("code", flat=True))
    assert {"DEPT001", "SUPER001"} <= listed
    assert len(listed) == Store.objects.count()


def test_hq_admin_finds_both_stores_of_a_district_by_search(client, hq_admin, dept001, super001):
    client.force_login(hq_admin)

    response = client.get(STORE_CHANGELIST, {"q": "解放碑"})

    content = response.content.decode()
    assert dept001.name in content
    assert super001.name in content


# --- change page, history, close ----------------------------------------------------------------


def test_store_manager_can_open_their_own_stores_page(client, dept001_manager, dept001):
    client.force_login(dept001_manager)

    response = client.get(_change_url(dept001))

    assert response.status_code == 200
    assert dept001.name in response.content.decode()


def test_store_manager_cannot_open_another_stores_page(client, dept001_manager, super001):
    # given
    client.force_login(dept001_manager)
    # when
    response = client.get(_change_url(super001), follow=True)
    # then: Django admin treats a row outside get_queryset as missing and goes back to the index
    assert response.redirect_chain[0][1] == 302
    assert response.redirect_chain[-1][0] == "/admin/"
    assert super001.name not in response.content.decode()


def test_store_manager_cannot_change_another_store_by_posting_its_form(client, dept001_manager, super001):
    client.force_login(dept001_manager)
    original_name = super001.name

    client.post(
        _change_url(super001),
        {
            "name": "hijacked",
            "format": super001.format_id,
            "region": super001.region_id,
            "address": super001.address,
            "phone": super001.phone,
            "status": super001.status,
        },
    )

    super001.refresh_from_db()
    assert super001.name == original_name


def test_store_manager_gets_404_for_another_stores_history(client, dept001_manager, super001):
    client.force_login(dept001_manager)

    response = client.get(_history_url(super001))

    assert response.status_code == 404


def test_store_manager_can_read_their_own_stores_history(client, dept001_manager, dept001):
    client.force_login(dept001_manager)

    response = client.get(_history_url(dept001))

    assert response.status_code == 200


def test_store_manager_gets_404_for_closing_another_store(client, dept001_manager, super001):
    client.force_login(dept001_manager)

    response = client.get(f"/admin/stores/store/{super001.pk}/close/")

    assert response.status_code == 404


# --- export -----------------------------------------------------------------------------------


def test_export_queryset_of_a_store_manager_holds_only_their_store(dept001_manager, dept001, super001):
    # given
    request = RequestFactory().get("/admin/stores/store/export/")
    request.user = dept001_manager
    # when
    queryset = _store_admin().get_export_queryset(request)
    # then
    assert list(queryset.values_list("code", flat=True)) == ["DEPT001"]


def test_export_queryset_of_hq_admin_holds_every_store(hq_admin, dept001, super001):
    request = RequestFactory().get("/admin/stores/store/export/")
    request.user = hq_admin

    queryset = _store_admin().get_export_queryset(request)

    assert queryset.count() == Store.objects.count()


def test_store_manager_csv_export_contains_only_their_store(client, dept001_manager, dept001, super001):
    # given
    client.force_login(dept001_manager)
    # when
    response = client.post("/admin/stores/store/export/", _export_post_data(dept001_manager))
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert _exported_codes(response) == ["DEPT001"]
    assert super001.name not in response.content.decode("utf-8-sig")


def test_hq_admin_csv_export_contains_both_stores(client, hq_admin, dept001, super001):
    client.force_login(hq_admin)

    response = client.post("/admin/stores/store/export/", _export_post_data(hq_admin))

    codes = _exported_codes(response)
    assert "DEPT001" in codes
    assert "SUPER001" in codes
    assert len(codes) == Store.objects.count()


# --- terminals --------------------------------------------------------------------------------


def test_terminal_add_form_offers_only_the_managers_stores(client, dept001_manager, dept001, super001):
    # given
    client.force_login(dept001_manager)
    # when
    response = client.get("/admin/stores/terminal/add/")
    # then
    assert response.status_code == 200
    store_field = response.context["adminform"].form.fields["store"]
    assert list(store_field.queryset.values_list("code", flat=True)) == ["DEPT001"]
    assert super001.name not in response.content.decode()


def test_store_autocomplete_for_terminals_offers_only_the_managers_stores(client, dept001_manager, dept001, super001):
    client.force_login(dept001_manager)

    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "stores", "model_name": "terminal", "field_name": "store", "term": "解放碑"},
    )

    assert response.status_code == 200
    offered = {result["id"] for result in response.json()["results"]}
    assert offered == {str(dept001.pk)}


def test_store_manager_cannot_add_a_terminal_to_another_store(client, dept001_manager, super001):
    client.force_login(dept001_manager)

    response = client.post("/admin/stores/terminal/add/", {"store": super001.pk, "name": "sneaky"})

    assert response.status_code == 200  # the form comes back with an error
    assert "store" in response.context["adminform"].form.errors
    assert not Terminal.objects.filter(store=super001).exists()


def test_store_manager_can_add_a_terminal_to_their_store(client, dept001_manager, dept001):
    client.force_login(dept001_manager)

    response = client.post("/admin/stores/terminal/add/", {"store": dept001.pk, "name": "T9"})

    assert response.status_code == 302
    assert Terminal.objects.filter(store=dept001, name="T9").exists()


def test_terminal_list_of_a_store_manager_shows_only_their_stores_terminals(client, dept001_manager, terminals):
    # given
    dept_terminal, super_terminal = terminals
    client.force_login(dept001_manager)
    # when
    response = client.get(TERMINAL_CHANGELIST)
    # then
    assert response.status_code == 200
    assert list(response.context["cl"].queryset) == [dept_terminal]
    assert "SUPER001/T-SUPER" not in response.content.decode()


def test_terminal_list_of_hq_admin_shows_every_terminal(client, hq_admin, terminals):
    client.force_login(hq_admin)

    response = client.get(TERMINAL_CHANGELIST)

    assert set(response.context["cl"].queryset) == set(terminals)


def test_store_manager_gets_404_for_another_stores_terminal_history(client, dept001_manager, terminals):
    _, super_terminal = terminals
    client.force_login(dept001_manager)

    response = client.get(f"/admin/stores/terminal/{super_terminal.pk}/history/")

    assert response.status_code == 404


# --- stores.queries ----------------------------------------------------------------------------


def test_superuser_sees_every_store(reference_stores):
    superuser = User.objects.create_superuser("root", password="pw-for-tests-123")

    assert user_store_ids(superuser) is None
    assert scope_queryset(Store.objects.all(), superuser, "").count() == Store.objects.count()


def test_hq_profile_sees_every_store(hq_admin, reference_stores):
    assert user_store_ids(hq_admin) is None
    assert scope_queryset(Store.objects.all(), hq_admin, "").count() == Store.objects.count()


def test_store_profile_sees_its_own_store_ids(dept001_manager, dept001):
    assert user_store_ids(dept001_manager) == frozenset({dept001.pk})
    assert list(scope_queryset(Store.objects.all(), dept001_manager, "")) == [dept001]


def test_store_profile_scopes_rows_through_a_store_path(dept001_manager, terminals):
    dept_terminal, _ = terminals

    assert list(scope_queryset(Terminal.objects.all(), dept001_manager, "store")) == [dept_terminal]


def test_staff_user_without_a_profile_sees_nothing(reference_stores):
    user = User.objects.create_user("no_profile", password="pw-for-tests-123", is_staff=True)

    assert user_store_ids(user) == frozenset()
    assert not scope_queryset(Store.objects.all(), user, "").exists()


def test_store_profile_without_stores_sees_nothing(reference_stores):
    user = StaffFactory(username="lonely", scope=StaffProfile.Scope.STORES)

    assert user_store_ids(user) == frozenset()
    assert not scope_queryset(Store.objects.all(), user, "").exists()

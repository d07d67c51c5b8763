"""The webhook screens (integrations/admin.py): subscriptions through the services, the secret, the outbox and its
deliveries, resending; headquarters only."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import Delivery, EventType, Subscription
from integrations.services import subscription_create, subscription_secret
from stores.models import StaffProfile
from tests.core.test_i18n_pages import ALLOWED, english_words
from tests.factories import StaffFactory
from tests.integrations.test_subscriptions import GOOD, make_event, sent  # noqa: F401 - fixtures

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
SUBSCRIPTIONS = "/admin/integrations/subscription/"
EVENTS = "/admin/integrations/event/"
DELIVERIES = "/admin/integrations/delivery/"
HOSTILE = "\x00'\"<script>x</script>\ud800%00".encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@pytest.fixture
def hq(client, hq_admin):
    client.force_login(hq_admin)
    return client


@pytest.fixture
def subscription(db):
    return subscription_create(**GOOD, secret="receiver-secret-0123456789")


@pytest.fixture
def delivered(subscription):
    """An event delivered to the subscription three days ago."""
    return make_event([subscription], at=timezone.now() - timedelta(days=3))


def _form(**changes) -> dict:
    return {"name": "会员小程序", "url": "https://mp.example.cn/hooks", "event_types": ["member.created",
                                                                                    "points.earned"],
            "is_active": "on", "secret": "", **changes}


def test_headquarters_add_a_subscription_and_see_its_secret_on_its_page(hq, hq_admin):
    # when
    response = hq.post(f"{SUBSCRIPTIONS}add/", _form(), **EN)

    # then: created through the service, with a random sealed secret, and the page shows it
    subscription = Subscription.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{SUBSCRIPTIONS}{subscription.pk}/change/"
    assert subscription.event_types == ["points.earned", "member.created"]
    assert subscription.created_by == hq_admin
    secret = subscription_secret(subscription)
    assert len(secret) >= 40 and secret not in subscription.secret_sealed
    page = hq.get(response["Location"], **EN).content.decode()
    assert f'value="{secret}"' in page


def test_the_add_form_names_a_bad_field_and_creates_nothing(hq):
    response = hq.post(f"{SUBSCRIPTIONS}add/", _form(url="ftp://mp.example.cn/hooks", secret="short"), **EN)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"url", "secret"}
    assert not Subscription.objects.exists()


def test_the_change_form_saves_through_the_service(hq, subscription, hq_admin):
    response = hq.post(f"{SUBSCRIPTIONS}{subscription.pk}/change/",
                       _form(name="集团APP", url=subscription.url, event_types=["card.loaded"], is_active=""), **EN)

    assert response.status_code == 302
    row = Subscription.objects.get(pk=subscription.pk)
    assert row.event_types == ["card.loaded"] and not row.is_active
    assert subscription_secret(row) == "receiver-secret-0123456789"
    assert row.history.latest().history_user == hq_admin
    history = hq.get(f"{SUBSCRIPTIONS}{subscription.pk}/history/", **EN)
    assert history.status_code == 200 and "hq_admin" in history.content.decode()


def test_the_secret_is_hidden_from_staff_who_may_only_view(client, subscription):
    viewer = StaffFactory(username="hq_viewer", scope=StaffProfile.Scope.HQ,
                          permissions=["integrations.view_subscription"])
    client.force_login(viewer)

    page = client.get(f"{SUBSCRIPTIONS}{subscription.pk}/change/", **EN).content.decode()

    assert "集团APP" in page and "receiver-secret-0123456789" not in page
    assert client.post(f"{SUBSCRIPTIONS}{subscription.pk}/secret/").status_code == 403


def test_make_a_new_secret_from_the_subscriptions_page(hq, subscription):
    response = hq.post(f"{SUBSCRIPTIONS}{subscription.pk}/secret/", **EN)

    assert response.status_code == 302
    secret = subscription_secret(Subscription.objects.get(pk=subscription.pk))
    assert secret != "receiver-secret-0123456789"
    assert f'value="{secret}"' in hq.get(response["Location"], **EN).content.decode()
    assert hq.get(f"{SUBSCRIPTIONS}{subscription.pk}/secret/").status_code == 405


def test_resend_the_events_of_a_period_from_the_subscriptions_page(hq, subscription, delivered, sent,
                                                                  django_capture_on_commit_callbacks):
    url = f"{SUBSCRIPTIONS}{subscription.pk}/resend/"
    assert hq.get(url, **ZH).status_code == 200
    since = timezone.localtime(delivered.created_at - timedelta(minutes=1))

    with django_capture_on_commit_callbacks(execute=True):
        response = hq.post(url, {"since": f"{since:%Y-%m-%dT%H:%M}",
                                 "until": f"{since + timedelta(days=1):%Y-%m-%dT%H:%M}"}, **EN)

    assert response.status_code == 302
    assert delivered.deliveries.get().status == Delivery.Status.PENDING
    assert sent == [subscription.pk]


@pytest.mark.parametrize("data", [
    {"since": "2026-12-01T00:00", "until": "2026-11-01T00:00"},
    {"since": "2026-10-01T00:00", "until": "2026-12-01T00:00"},
    {"since": HOSTILE, "until": "\x00", "event_types": [HOSTILE]},
    {},
])
def test_a_bad_resend_period_is_shown_on_the_form_and_changes_nothing(hq, subscription, delivered, data):
    response = hq.post(f"{SUBSCRIPTIONS}{subscription.pk}/resend/", data, **EN)

    assert response.status_code == 200
    assert response.context["form"].errors
    assert delivered.deliveries.get().status == Delivery.Status.DELIVERED


def test_the_resend_action_of_the_events_list_resends_to_every_subscription(hq, subscription, delivered, sent,
                                                                           django_capture_on_commit_callbacks):
    other = subscription_create(**{**GOOD, "name": "财务系统"})
    event = make_event([subscription, other], at=timezone.now() - timedelta(days=1))

    with django_capture_on_commit_callbacks(execute=True):
        response = hq.post(EVENTS, {"action": "resend_selected", "_selected_action": [event.pk]}, **EN)

    assert response.status_code == 302
    assert set(event.deliveries.values_list("status", flat=True)) == {Delivery.Status.PENDING}
    assert delivered.deliveries.get().status == Delivery.Status.DELIVERED
    assert sent == sorted([subscription.pk, other.pk])


def test_the_resend_action_of_the_deliveries_list_resends_the_selected(hq, subscription, delivered,
                                                                      django_capture_on_commit_callbacks, sent):
    delivery = delivered.deliveries.get()

    with django_capture_on_commit_callbacks(execute=True):
        response = hq.post(DELIVERIES, {"action": "resend_selected", "_selected_action": [delivery.pk]}, **EN)

    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING and delivery.attempts == 1
    assert sent == [subscription.pk]
    # and the button on a delivery's own page
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED)
    assert hq.post(f"{DELIVERIES}{delivery.pk}/resend/").status_code == 302
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.PENDING


def test_the_event_and_delivery_pages_read_in_chinese_with_deliveries(hq, subscription, delivered):
    delivery = delivered.deliveries.get()
    allowed = ALLOWED | {"Webhook"}
    for url in (SUBSCRIPTIONS, f"{SUBSCRIPTIONS}add/", f"{SUBSCRIPTIONS}{subscription.pk}/change/",
                f"{SUBSCRIPTIONS}{subscription.pk}/resend/", EVENTS, f"{EVENTS}{delivered.pk}/change/",
                DELIVERIES, f"{DELIVERIES}{delivery.pk}/change/"):
        response = hq.get(url, **ZH)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert english_words(page, allowed) == [], url
    listed = hq.get(EVENTS, **ZH).content.decode()
    assert delivered.public_id in listed and "集团APP" in listed
    assert delivered.public_id in hq.get(DELIVERIES, **ZH).content.decode()


def test_search_finds_an_event_by_its_card_number_or_id(hq, subscription, delivered):
    other = make_event([subscription], subject="member:M000123")

    by_card = hq.get(EVENTS, {"q": "8697000000000001"}).content.decode()
    by_id = hq.get(DELIVERIES, {"q": other.public_id}).content.decode()

    assert delivered.public_id in by_card and other.public_id not in by_card
    assert other.public_id in by_id and delivered.public_id not in by_id


@pytest.mark.parametrize("url", [SUBSCRIPTIONS, EVENTS, DELIVERIES])
def test_hostile_bytes_in_the_search_box_and_filters_are_no_error(hq, delivered, url):
    for params in ({"q": HOSTILE}, {"q": "card:" + "9" * 500}, {"status__exact": HOSTILE},
                   {"subscription__id__exact": "x"}, {"type__exact": HOSTILE}, {"event__type__exact": "\x00"}):
        assert hq.get(url, params).status_code in (200, 302), params


def test_hostile_bytes_in_the_subscription_form_are_named_errors(hq):
    response = hq.post(f"{SUBSCRIPTIONS}add/", _form(name=HOSTILE, url=HOSTILE, event_types=[HOSTILE],
                                                      secret=HOSTILE), **EN)

    assert response.status_code == 200
    assert {"name", "url", "event_types", "secret"} <= set(response.context["adminform"].form.errors)
    assert not Subscription.objects.exists()


def test_nothing_is_added_or_deleted_by_hand(hq, subscription, delivered):
    assert hq.get(f"{EVENTS}add/").status_code == 403
    assert hq.get(f"{DELIVERIES}add/").status_code == 403
    for url in (f"{SUBSCRIPTIONS}{subscription.pk}/delete/", f"{EVENTS}{delivered.pk}/delete/"):
        assert hq.post(url, {"post": "yes"}).status_code == 403
    assert Subscription.objects.filter(pk=subscription.pk).exists()


def test_a_store_manager_opens_no_webhook_page(client, dept001_manager, subscription, delivered):
    client.force_login(dept001_manager)
    delivery = delivered.deliveries.get()
    urls = [SUBSCRIPTIONS, f"{SUBSCRIPTIONS}add/", f"{SUBSCRIPTIONS}{subscription.pk}/change/",
            f"{SUBSCRIPTIONS}{subscription.pk}/history/", f"{SUBSCRIPTIONS}{subscription.pk}/resend/",
            EVENTS, f"{EVENTS}{delivered.pk}/change/", f"{EVENTS}{delivered.pk}/history/",
            DELIVERIES, f"{DELIVERIES}{delivery.pk}/change/", "/admin/integrations/"]
    for url in urls:
        response = client.get(url)
        assert response.status_code in (302, 403, 404), url
        assert "receiver-secret" not in response.content.decode()
    for url in (f"{SUBSCRIPTIONS}{subscription.pk}/secret/", f"{SUBSCRIPTIONS}{subscription.pk}/resend/",
                f"{EVENTS}{delivered.pk}/resend/", f"{DELIVERIES}{delivery.pk}/resend/"):
        assert client.post(url, {"since": "2026-01-01T00:00", "until": "2026-01-02T00:00"}).status_code in (
            302, 403, 404), url
    assert subscription_secret(Subscription.objects.get(pk=subscription.pk)) == "receiver-secret-0123456789"
    assert delivery.__class__.objects.get(pk=delivery.pk).status == Delivery.Status.DELIVERED
    assert "/admin/integrations/" not in client.get("/admin/").content.decode()


def test_the_admin_home_has_an_integrations_group(hq):
    html = hq.get("/admin/", **EN).content.decode()

    assert '<span class="section">Integrations</span>' in html
    for url in (SUBSCRIPTIONS, EVENTS, DELIVERIES):
        assert url in html


def test_event_types_are_offered_grouped_with_their_codes(hq):
    page = hq.get(f"{SUBSCRIPTIONS}add/", **EN).content.decode()
    page = page[page.index('id="id_event_types"'):]

    for value in EventType.values:
        assert f'value="{value}"' in page and f"<code>{value}</code>" in page
    assert page.index("Prepaid cards") < page.index("card.loaded") < page.index("Points") < page.index(
        "points.earned") < page.index("Members")

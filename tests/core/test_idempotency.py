import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from core.models import IdempotencyRecord
from core.services import idempotency_records_purge
from stores.models import Region

pytestmark = pytest.mark.urls("tests.core.urls")
URL = "/api/v1/test/provinces"


def post(api, body, key="key-1", **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post(URL, data=json.dumps(body) if not isinstance(body, str) else body,
                    content_type="application/json", **headers, **extra)


def test_replay_returns_first_response_and_writes_nothing(api):
    # given
    first = post(api, {"code": "ZZ"})
    # when
    second = post(api, {"code": "ZZ"})
    # then
    assert first.status_code == 201
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Region.objects.filter(code="ZZ").count() == 1


def test_same_key_with_different_body_is_conflict(api):
    post(api, {"code": "ZZ"})
    response = post(api, {"code": "YY"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert not Region.objects.filter(code="YY").exists()


def test_key_order_in_body_does_not_matter(api):
    post(api, {"code": "ZZ", "fail": False})
    response = api.post(URL, data='{"fail": false, "code": "ZZ"}', content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="key-1")
    assert response.status_code == 201


def test_error_answer_is_replayed_and_its_writes_rolled_back(api):
    first = post(api, {"code": "ZZ", "fail": True})
    second = post(api, {"code": "ZZ", "fail": True})
    assert first.status_code == 422
    assert first.json()["error"]["code"] == "limit_exceeded"
    assert (second.status_code, second.json()) == (first.status_code, first.json())
    assert not Region.objects.filter(code="ZZ").exists()


def test_missing_idempotency_key_is_validation_error(api):
    response = post(api, {"code": "ZZ"}, key=None)
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "validation_error"
    assert "Idempotency-Key" in body["fields"]
    assert not Region.objects.filter(code="ZZ").exists()


@pytest.mark.parametrize("key", ["x" * 65, "ключ"])
def test_over_long_or_non_printable_key_is_validation_error(api, key):
    response = post(api, {"code": "ZZ"}, key=key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_malformed_json_is_validation_error_not_500(api):
    response = post(api, '{"code": ', key="k")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_wrong_types_name_the_field(api):
    response = post(api, {"code": 12, "fail": "perhaps"}, key="k")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"code", "fail"}


def test_keys_are_per_terminal(api, client, dept001):
    from stores.services import terminal_create

    post(api, {"code": "ZZ"}, key="shared")
    _, other_key = terminal_create(store_code="DEPT001", name="T2")
    response = client.post(URL, data=json.dumps({"code": "YY"}), content_type="application/json",
                           HTTP_IDEMPOTENCY_KEY="shared", HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert response.status_code == 201
    assert Region.objects.filter(code__in=["ZZ", "YY"]).count() == 2


def test_purge_forgets_old_keys_only(api):
    post(api, {"code": "ZZ"}, key="old")
    post(api, {"code": "YY"}, key="new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(days=30))
    assert idempotency_records_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_requests_with_one_key_write_once(terminal_with_key):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under concurrency need PostgreSQL")
    from django.test import Client

    _, key = terminal_with_key
    barrier = threading.Barrier(4)
    results = []

    def call():
        client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
        barrier.wait()
        response = client.post(URL, data=json.dumps({"code": "QQ"}), content_type="application/json",
                               HTTP_IDEMPOTENCY_KEY="race")
        results.append((response.status_code, response.json()))
        connection.close()

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _ in results} == {201}
    assert len({json.dumps(body, sort_keys=True) for _, body in results}) == 1
    assert Region.objects.filter(code="QQ").count() == 1

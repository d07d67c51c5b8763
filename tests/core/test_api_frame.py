import pytest


def test_terminal_endpoint_returns_terminal_and_store(api):
    # when
    response = api.get("/api/v1/terminal")
    # then
    assert response.status_code == 200
    assert response.json() == {
        "terminal": "T1",
        "store": {"code": "DEPT001", "name": "嘉禾百货解放碑店", "format": "DEPT"},
    }


@pytest.mark.django_db
def test_missing_key_is_unauthenticated_in_the_envelope(client):
    response = client.get("/api/v1/terminal")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_unknown_key_is_unauthenticated(client, terminal_with_key):
    response = client.get("/api/v1/terminal", HTTP_AUTHORIZATION="Bearer pos_not-a-real-key")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_disabled_terminal_key_is_unauthenticated(client, terminal_with_key):
    terminal, key = terminal_with_key
    terminal.is_active = False
    terminal.save()
    response = client.get("/api/v1/terminal", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_unknown_api_path_is_not_found_in_the_envelope(api):
    response = api.get("/api/v1/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    assert client.get("/api/v1/schema/").status_code == 200
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content.lower()

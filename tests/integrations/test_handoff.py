"""Handing subscriptions to the worker after commit: one message per transaction, and not again and again."""

import pytest

from integrations import events, tasks


@pytest.fixture
def published(monkeypatch, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.WEBHOOK_PUBLISH_INTERVAL_SECONDS = 0.25
    events._published.clear()
    calls: list = []
    monkeypatch.setattr(tasks.deliveries_send, "delay", lambda pk: calls.append(("one", pk)))
    monkeypatch.setattr(tasks.deliveries_send_many, "delay", lambda ids: calls.append(("many", ids)))
    clock = {"now": 100.0}
    monkeypatch.setattr(events.time, "monotonic", lambda: clock["now"])
    yield calls, clock
    events._published.clear()


def test_a_transaction_to_several_subscriptions_is_one_message(published):
    calls, _clock = published

    events._send({3, 1})

    assert calls == [("many", [1, 3])]


def test_the_same_subscriptions_are_handed_over_again_only_after_the_interval(published):
    calls, clock = published

    events._send({1})
    clock["now"] += 0.1
    events._send({1})
    events._send({2})
    clock["now"] += 0.2
    events._send({1})

    assert calls == [("one", 1), ("one", 2), ("one", 1)]


def test_without_an_interval_every_commit_hands_over(published, settings):
    calls, _clock = published
    settings.WEBHOOK_PUBLISH_INTERVAL_SECONDS = 0

    events._send({1})
    events._send({1})

    assert calls == [("one", 1), ("one", 1)]

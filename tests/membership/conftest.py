"""Fixtures for members, named for the state they create."""

import threading
from datetime import date

import pytest
from django.db import connection

from tests.factories import MemberFactory, resident_id  # noqa: F401 - resident_id: the tests import it from here


def register(**fields):
    """Register a member through the service, as the desk does, with only the fields given (no made-up phone)."""
    return MemberFactory(phone=fields.pop("phone", ""), **fields)


def concurrently(count: int, work) -> list:
    """Run work(i) in `count` threads released together; return each result or the exception it raised."""
    barrier = threading.Barrier(count, timeout=30)
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as error:  # noqa: BLE001 - the test inspects what each thread got
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def kinds(results) -> dict:
    """How many results of each type, exceptions included: {"CashOut": 20, "InsufficientPoints": 30}."""
    summary: dict = {}
    for result in results:
        name = type(result).__name__
        summary[name] = summary.get(name, 0) + 1
    return summary


@pytest.fixture
def elderly_member_without_phone(dept001):
    """张秀英, born 1948, registered at DEPT001 with her ID card and her son's phone."""
    return register(
        name="张秀英", id_type="resident_id", id_number=resident_id(date(1948, 3, 12)),
        family_phone="13908070605", store=dept001,
    )


@pytest.fixture
def member_with_phone(dept001):
    return register(name="李建国", phone="13800138000", store=dept001)

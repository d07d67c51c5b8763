"""Fixtures for members, named for the state they create."""

import itertools
import threading
from datetime import date

import pytest
from django.db import connection

from core.pii import resident_id_check_digit
from membership.services import MemberInput, member_register

_serial = itertools.count(1)


def resident_id(birth: date, *, region: str = "500103", gender: str = "F", serial: int | None = None) -> str:
    """A valid resident ID number (GB 11643) for a birth date; odd 17th digit for men."""
    serial = next(_serial) if serial is None else serial
    order = (serial % 400) * 2 + (1 if gender == "M" else 0)
    first17 = f"{region}{birth:%Y%m%d}{order:03d}"[:17]
    return first17 + resident_id_check_digit(first17)


def register(**fields):
    """Register a member through the service, as the desk does."""
    store = fields.pop("store", None)
    registered_by = fields.pop("registered_by", None)
    channel = fields.pop("channel", "desk")
    return member_register(data=MemberInput(**fields), store=store, registered_by=registered_by, channel=channel)


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

"""The date and machine that figures carry."""

import datetime
import os
import time

import pytest

from earlyexit.stamp import machine, stamp, today


@pytest.fixture
def zone(monkeypatch):
    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()
    yield set_zone
    monkeypatch.undo()
    time.tzset()


def test_the_date_is_utc_in_every_time_zone(zone):
    # UTC+14 is a day ahead of UTC from 10:00 UTC, UTC-12 a day behind until 12:00 UTC: at any hour one of
    # them differs from UTC, so a date read in local time fails here.
    for name in ("Pacific/Kiritimati", "Etc/GMT+12"):
        zone(name)
        utc = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        assert today() == utc, name


def test_the_stamp_names_the_date_and_the_machine():
    assert machine() == f"{os.cpu_count()}-core {os.uname().machine}"
    assert stamp() == f"{today()}, {machine()}"

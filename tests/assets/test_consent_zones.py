"""A consent's last day is a day in the time zone recorded with it: every machine agrees when it ends, and the
shell's TZ cannot stretch it. Before, each machine read ``expires`` against its own local date."""

import datetime as dt
import os
import sqlite3
import time

import pytest

from assets import consent_dates
from assets.actors import add_actor
from assets.consent import ConsentError, find_valid, get_consent, grant
from assets.workspace import Workspace
from tests.cli_runner import run_cli

UTC = dt.UTC


@pytest.fixture()
def ws(tmp_path):
    w = Workspace.init(tmp_path / "ws")
    add_actor(w, "Jane Doe", actor_id="jane")
    return w


@pytest.fixture()
def local_tz(monkeypatch):
    """Set the process's local zone (TZ + tzset) for one test."""
    def set_tz(value: str) -> None:
        monkeypatch.setenv("TZ", value)
        time.tzset()
    yield set_tz
    monkeypatch.undo()
    time.tzset()


def _clock(monkeypatch, when: dt.datetime) -> None:
    monkeypatch.setattr(consent_dates, "now_utc", lambda: when)


def test_the_shells_time_zone_cannot_stretch_a_consent(ws, local_tz):
    utc_today = dt.datetime.now(UTC).date()
    c = grant(ws, "jane", "render", "Film", utc_today - dt.timedelta(days=1), timezone="UTC",
              today=utc_today - dt.timedelta(days=1))
    # a POSIX zone far enough west that the local date is still yesterday (UTC's)
    local_tz(f"WEST{dt.datetime.now(UTC).hour + 1}")
    assert dt.date.today() == utc_today - dt.timedelta(days=1)
    with ws.read() as con, pytest.raises(ConsentError, match=rf"{c.id} expired .* \(UTC\)"):
        find_valid(con, "jane", "render", "Film")
    assert get_consent(ws, c.id).status() == "expired"


def test_a_consent_ends_at_midnight_in_its_own_zone_whatever_the_machines(ws, monkeypatch, local_tz):
    c = grant(ws, "jane", "render", "Film", "2031-03-10", timezone="America/Los_Angeles", today=dt.date(2031, 3, 1))
    for machine_tz in ("UTC", "Asia/Tokyo", "Pacific/Honolulu"):
        local_tz(machine_tz)
        _clock(monkeypatch, dt.datetime(2031, 3, 11, 6, 59, tzinfo=UTC))     # 23:59 on the 10th in Los Angeles (PDT)
        assert get_consent(ws, c.id).status() == "valid", machine_tz
        _clock(monkeypatch, dt.datetime(2031, 3, 11, 7, 1, tzinfo=UTC))      # 00:01 on the 11th there
        assert get_consent(ws, c.id).status() == "expired", machine_tz


def test_the_zone_defaults_to_the_granting_machines_and_is_checked(ws, local_tz):
    local_tz("Asia/Tokyo")
    assert grant(ws, "jane", "scan", "Film", "2031-01-01").timezone == "Asia/Tokyo"
    with pytest.raises(ConsentError, match=r"--timezone 'Europe/Londn': not an IANA time zone \(did you mean "
                                           r"Europe/London"):
        grant(ws, "jane", "scan", "Film", "2031-01-01", timezone="Europe/Londn")


def test_a_consent_recorded_without_a_zone_ends_at_the_earliest_midnight(ws, monkeypatch):
    c = grant(ws, "jane", "render", "Film", "2031-03-10", timezone="UTC", today=dt.date(2031, 3, 1))
    with ws.write() as con:
        con.execute("UPDATE consents SET timezone=NULL WHERE id=?", (c.id,))
    _clock(monkeypatch, dt.datetime(2031, 3, 10, 9, 59, tzinfo=UTC))      # 23:59 on the 10th at UTC+14
    assert get_consent(ws, c.id).status() == "valid"
    _clock(monkeypatch, dt.datetime(2031, 3, 10, 10, 1, tzinfo=UTC))
    with ws.read() as con, pytest.raises(ConsentError, match="no time zone recorded"):
        find_valid(con, "jane", "render", "Film")


def test_a_reviewer_reads_an_index_of_schema_3_as_it_is(tmp_path, monkeypatch):
    """A user who may not write the index cannot upgrade it: it is read as it stands (consents without a zone)."""
    root = tmp_path / "old"
    w = Workspace.init(root)
    add_actor(w, "Jane Doe", actor_id="jane")
    c = grant(w, "jane", "render", "Film", "2031-03-10", timezone="UTC", today=dt.date(2031, 3, 1))
    _downgrade_to_schema_3(root)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m, *a, **k: not m & os.W_OK and real_access(p, m, *a, **k))
    reviewer = Workspace.open(root)
    assert reviewer.read_only and get_consent(reviewer, c.id).timezone is None
    with reviewer.read() as con:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"


def _downgrade_to_schema_3(root):
    con = sqlite3.connect(root / "doppel.sqlite")
    con.execute("ALTER TABLE consents DROP COLUMN timezone")
    con.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    con.commit()
    con.close()


def test_an_index_of_schema_3_is_upgraded_in_place(tmp_path):
    root = tmp_path / "old"
    w = Workspace.init(root)
    add_actor(w, "Jane Doe", actor_id="jane")
    c = grant(w, "jane", "render", "Film", "2031-03-10", timezone="UTC", today=dt.date(2031, 3, 1))
    _downgrade_to_schema_3(root)
    w = Workspace.open(root)
    with w.read() as con:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "4"
    assert get_consent(w, c.id).timezone is None                              # recorded before zones were kept


def test_cli_grant_and_show_name_the_zone(ws, capsys):
    code, out, err = run_cli(capsys, "consent", "grant", "jane", "--uses", "render", "--production", "Film",
                             "--expires", "2031-01-01", "--timezone", "Europe/London", "-W", str(ws.root))
    assert code == 0 and "through 2031-01-01 (Europe/London)" in out, err
    code, out, _ = run_cli(capsys, "consent", "show", "jane", "-W", str(ws.root))
    assert code == 0 and "2031-01-01 (Europe/London)" in out
    code, _, err = run_cli(capsys, "consent", "grant", "jane", "--uses", "render", "--production", "Film",
                           "--expires", "2031-01-01", "--timezone", "Mars/Olympus", "-W", str(ws.root))
    assert code == 1 and "not an IANA time zone" in err and len(err.strip().splitlines()) == 1


def test_a_posix_tz_names_no_zone_and_the_grant_asks_for_one(ws, local_tz):
    """TZ=XYZ3 puts local time at UTC-3; reading /etc/localtime instead would have recorded the wrong zone."""
    local_tz("XYZ3")
    with pytest.raises(ConsentError, match=r"time zone \(UTC-03:00, \$TZ=XYZ3\) has no IANA name: give --timezone"):
        grant(ws, "jane", "scan", "Film", "2031-01-01")
    local_tz("America/Sao_Paulo")
    assert grant(ws, "jane", "scan", "Film", "2031-01-01").timezone == "America/Sao_Paulo"

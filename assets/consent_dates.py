"""Which calendar day it is for a consent: its expiry date is a day in the time zone recorded with it.

A consent's ``expires`` is the last day it is valid. Read in each machine's own zone, a render node in UTC and an
artist's workstation in Los Angeles disagreed for up to a day about whether it was still in force, and anyone
could run a command with ``TZ=Etc/GMT+12`` to stretch it. Every consent now records the IANA zone its dates are
in (``--timezone``, default the granting machine's zone), and every machine asks what day it is *there*.

Consents recorded before the zone was kept have none: their last day is taken to end at the earliest midnight
on Earth (UTC+14). That can end one up to a day early, never late: a gate that cannot decide refuses.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

EARLIEST = _dt.timezone(_dt.timedelta(hours=14), "UTC+14")     # the first zone where a calendar day ends
NO_ZONE = "UTC+14: no time zone recorded with this consent"
_MACHINE_RELATIVE = ("localtime", "posixrules", "Factory")     # tz database names that mean "this machine's"


def zone_info(name: str | None) -> _dt.tzinfo:
    """The tzinfo of a recorded zone name; EARLIEST for None (a consent recorded before zones were kept)."""
    if not name:
        return EARLIEST
    return ZoneInfo(name)


def check_zone(name: str) -> str:
    """``name`` when it is an IANA time zone (Europe/London, America/Los_Angeles, UTC), else ValueError (one
    line) naming a few close ones."""
    try:
        if name and name not in _MACHINE_RELATIVE:
            ZoneInfo(name)
            return name
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError):
        pass
    import difflib

    close = difflib.get_close_matches(name, sorted(available_timezones() - set(_MACHINE_RELATIVE)), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else " (e.g. Europe/London, America/Los_Angeles, UTC)"
    raise ValueError(f"--timezone {name!r}: not an IANA time zone{hint}")


def local_zone_name() -> str:
    """This machine's IANA zone, the one its local time is in: $TZ when set (it alone decides local time), else
    the target of /etc/localtime, else /etc/timezone; a name is taken only when its offset now is the local
    offset. "UTC" when the local offset is zero and nothing names a zone. ValueError (one line) otherwise: a POSIX
    $TZ such as "XYZ3" names no IANA zone; give --timezone."""
    offset = _dt.datetime.now().astimezone().utcoffset()
    tz = os.environ.get("TZ")
    if tz:
        candidates = [tz.removeprefix(":")]
    else:
        candidates = []
        try:
            target = os.readlink("/etc/localtime")
            candidates.append(target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "")
        except OSError:
            pass
        try:
            candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
        except OSError:
            pass
    for name in filter(None, candidates):
        try:
            zone = check_zone(name)
        except ValueError:
            continue
        if _dt.datetime.now(ZoneInfo(zone)).utcoffset() == offset:
            return zone
    if offset == _dt.timedelta(0):
        return "UTC"
    raise ValueError(f"this machine's time zone (UTC{_hours(offset)}{', $TZ=' + tz if tz else ''}) has no IANA "
                     "name: give --timezone ZONE, the zone the consent's dates are in (e.g. Europe/London)")


def _hours(offset: _dt.timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def now_utc() -> _dt.datetime:
    """The present instant (aware, UTC): the one clock consent dates are read against (tests replace it)."""
    return _dt.datetime.now(_dt.UTC)


def today_in(zone: str | None, now: _dt.datetime | None = None) -> _dt.date:
    """The calendar date in ``zone`` (None: EARLIEST) at ``now`` (aware; default: the present instant)."""
    return (now or now_utc()).astimezone(zone_info(zone)).date()


def zone_label(zone: str | None) -> str:
    return zone or NO_ZONE

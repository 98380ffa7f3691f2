"""One time zone for everything people read: notices, pages, CSV (config ``timezone``).

Stored times stay ISO 8601 UTC; they are converted only when shown.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Asia/Tokyo"
# Japan has had no daylight saving time since 1951: without a tz database
# (a minimal container), Asia/Tokyo is still exactly UTC+9.
_FIXED = {"Asia/Tokyo": dt.timezone(dt.timedelta(hours=9), "JST"), "UTC": dt.UTC}


@lru_cache(maxsize=16)
def zone(name: str | None) -> dt.tzinfo:
    """The tzinfo for ``name``; ValueError if it is unknown."""
    name = name or DEFAULT_TIMEZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        if name in _FIXED:
            return _FIXED[name]
        raise ValueError(f"unknown time zone {name!r}") from exc


def parse(value: str | dt.datetime) -> dt.datetime:
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def local(value: str | dt.datetime | None, tz: str | None = None, seconds: bool = False) -> str:
    """'2026年11月25日 09:30' in the configured zone ('' for no value)."""
    if not value:
        return ""
    try:
        when = parse(value).astimezone(zone(tz))
    except ValueError:
        return str(value)
    text = f"{when.year}年{when.month}月{when.day}日 {when.hour:02d}:{when.minute:02d}"
    return text + (f":{when.second:02d}" if seconds else "")


def iso_local(value: str | dt.datetime | None, tz: str | None = None) -> str:
    """ISO 8601 with the zone's offset (for CSV cells a spreadsheet can sort)."""
    if not value:
        return ""
    try:
        return parse(value).astimezone(zone(tz)).isoformat(timespec="seconds")
    except ValueError:
        return str(value)


def deadline(received: str | dt.datetime, hours: float) -> dt.datetime:
    return parse(received) + dt.timedelta(hours=hours)


def remaining(until: dt.datetime, now: dt.datetime) -> str:
    """'残り 2日3時間' / '残り 45分' / '期限切れ'."""
    minutes = int((until - now).total_seconds() // 60)
    if minutes <= 0:
        return "期限切れ"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"残り {days}日{hours}時間"
    if hours:
        return f"残り {hours}時間{mins}分"
    return f"残り {mins}分"

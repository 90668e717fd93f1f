"""Helpers every provider's mappers share: timestamps, numbers and the unified enumerations.

Mappers run once per record, so these are small and allocation-light: they return final JSON types
(str / int / float / bool / None) and never go through the CDK's schema normalization (cdk-notes.md §5).

Every timestamp the connector emits has one shape, ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds), so that
cursor comparisons are plain string comparisons. Sub-second parts are dropped, never rounded up, so a
``>=`` comparison against a truncated cursor never skips a record.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

USER_STATUSES = frozenset({"active", "inactive", "invited", "suspended", "deleted", "unknown"})
USER_ROLES = frozenset({"learner", "instructor", "admin", "manager", "other"})
COURSE_TYPES = frozenset({"course", "path", "curriculum", "program", "microlearning", "other"})
COURSE_STATUSES = frozenset({"draft", "published", "archived", "disabled", "unknown"})
ENROLLMENT_STATUSES = frozenset(
    {"assigned", "enrolled", "in_progress", "completed", "passed", "failed", "withdrawn", "expired", "overdue", "unknown"}
)

_ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# ISO 8601 durations as APIs write them (PT1H30M, P1DT2H, PT45.5S); years and months have no fixed length.
_DURATION_RE = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:[.,]\d+)?)S)?)?$")
# ISO 8601 as LMS APIs write it: date, optional time (T or space), optional fraction, optional zone.
_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?\s*(Z|z|UTC|[+-]\d{2}:?\d{2})?$"
)
# The unified shape itself, as many APIs already write it: returned as it is (the hot path of most mappers).
_UNIFIED_RE = re.compile(r"\d{4}-(?!00)\d{2}-(?!00)\d{2}T\d{2}:\d{2}:\d{2}Z")


def epoch_to_iso(value: Any) -> str | None:
    """Unix seconds (int, float or digit string) to ISO 8601 UTC; None, "", 0 and garbage-free zero mean unset."""
    if value is None or value == "":
        return None
    seconds = int(float(value)) if not isinstance(value, int) else value
    if seconds <= 0:
        return None
    return time.strftime(_ISO_FORMAT, time.gmtime(seconds))


def epoch_ms_to_iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return epoch_to_iso(int(float(value)) // 1000)


def datetime_to_iso(value: datetime) -> str:
    """An aware datetime to ISO UTC; a naive one is taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime(_ISO_FORMAT)


def iso_to_iso(value: Any) -> str | None:
    """Any ISO 8601 timestamp (offset, Z, none = UTC, fraction, date only) to the unified shape.

    Zero dates (``0000-00-00 00:00:00``) and empty strings are unset. Anything else that is not ISO 8601 raises
    ValueError, so a provider's changed date format ends the sync loudly instead of nulling every date.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return epoch_to_iso(value)
    if _UNIFIED_RE.fullmatch(value) and not value.startswith("0000"):
        return value
    match = _ISO_RE.match(value.strip())
    if not match:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    year, month, day, hour, minute, second, zone = match.groups()
    if year == "0000" or month == "00" or day == "00":
        return None
    if not zone or zone in ("Z", "z", "UTC", "+00:00", "+0000", "-00:00"):
        # Already UTC: reformat without building a datetime (the common case on the hot path).
        return f"{year}-{month}-{day}T{hour or '00'}:{minute or '00'}:{second or '00'}Z"
    sign = 1 if zone[0] == "+" else -1
    zone = zone[1:].replace(":", "")
    offset = sign * (int(zone[:2]) * 3600 + int(zone[2:]) * 60)
    local = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=timezone.utc)
    return time.strftime(_ISO_FORMAT, time.gmtime(local.timestamp() - offset))


def iso_duration_to_seconds(value: Any) -> int | None:
    """An ISO 8601 duration (``PT1H30M``, ``P2DT3H``, ``PT90.5S``) to whole seconds; None / "" are unset.

    Years and months are refused (ValueError): they have no fixed length in seconds.
    """
    if value is None or value == "":
        return None
    match = _DURATION_RE.match(str(value).strip().upper())
    if not match or str(value).strip().upper() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration in weeks, days, hours, minutes or seconds: {value!r}")
    weeks, days, hours, minutes, seconds = match.groups()
    total = (int(weeks or 0) * 7 + int(days or 0)) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60
    return total + int(float((seconds or "0").replace(",", ".")))


def parse_iso(value: str) -> datetime:
    """A unified ISO timestamp (or any ISO 8601 string) to an aware datetime; ValueError when it is not one."""
    normalized = iso_to_iso(value)
    if normalized is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return datetime.strptime(normalized, _ISO_FORMAT).replace(tzinfo=timezone.utc)


def now_iso() -> str:
    return time.strftime(_ISO_FORMAT, time.gmtime())


def latest(*values: str | None) -> str | None:
    """The latest of some unified timestamps, ignoring nulls (string order is time order in the unified shape)."""
    present = [v for v in values if v]
    return max(present) if present else None


def to_str(value: Any) -> str | None:
    """Ids and codes are strings in the unified schema; empty means unset."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def to_number(value: Any) -> int | float | None:
    """A number, or a numeric string like "75", "75.5" or "75.50%", as int when whole; "" / None are unset."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    text = value.strip().rstrip("%").strip()
    if not text:
        return None
    number = float(text)
    return int(number) if number.is_integer() else number


def to_percent(value: Any) -> int | float | None:
    """Progress clamped to 0–100."""
    number = to_number(value)
    if number is None:
        return None
    return 0 if number < 0 else 100 if number > 100 else number


def to_bool(value: Any) -> bool | None:
    """true/false, 1/0, "1"/"0", "true"/"false", "yes"/"no", "on"/"off"; anything else is unset."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    return None


def full_name(first: str | None, last: str | None) -> str | None:
    name = " ".join(part for part in (first, last) if part)
    return name or None


def primary_emails(email: str | None, kind: str = "work") -> list[dict[str, Any]]:
    """The unified `emails` list for a provider that has one address per user."""
    return [{"email": email, "type": kind, "is_primary": True}] if email else []


def lookup(table: Mapping[str, str], raw: Any, default: str = "unknown") -> str:
    """Map a provider's enumeration value through its table; anything unmapped becomes `default`."""
    if raw is None:
        return default
    return table.get(str(raw).strip().lower(), default)


def custom_fields_from(raw: Mapping[str, Any], prefixes: Iterable[str]) -> dict[str, Any]:
    """The provider's custom fields, kept under their own keys: every key that starts with one of `prefixes`."""
    prefixes = tuple(prefixes)
    return {key: value for key, value in raw.items() if key.startswith(prefixes)}


def raw_copy(raw: Any, keep: bool) -> dict[str, Any] | None:
    """An upstream's record as received, for `remote_data` when the user asked for it (a hosted unified API's record
    already carries the LMS's own payload and whatever the unified schema has no place for)."""
    return dict(raw) if keep and isinstance(raw, Mapping) else None

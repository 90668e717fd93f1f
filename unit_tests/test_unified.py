import pytest

from source_lms_enrollments.unified import epoch_to_iso, iso_duration_to_seconds, iso_to_iso, latest, lookup, to_bool, to_number, to_percent


@pytest.mark.parametrize(
    "value, expected",
    [
        (1577246330, "2019-12-25T03:58:50Z"), ("1577246330", "2019-12-25T03:58:50Z"), ("1577246330.9", "2019-12-25T03:58:50Z"),
        (0, None), ("0", None), ("", None), (None, None),
    ],
)
def test_epoch_to_iso(value, expected):
    assert epoch_to_iso(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
        ("2024-05-01T12:00:00.987654Z", "2024-05-01T12:00:00Z"),  # truncated, never rounded up
        ("2024-05-01 12:00:00", "2024-05-01T12:00:00Z"),  # no zone: UTC
        ("2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00Z"),
        ("2024-05-01T00:30:00-0130", "2024-05-01T02:00:00Z"),
        ("2024-05-01", "2024-05-01T00:00:00Z"),
        ("0000-00-00 00:00:00", None), ("0000-00-00", None), ("", None), (None, None),
    ],
)
def test_iso_to_iso(value, expected):
    assert iso_to_iso(value) == expected


def test_iso_to_iso_rejects_what_is_not_a_timestamp():
    with pytest.raises(ValueError):
        iso_to_iso("yesterday")


def test_numbers_percent_bool_lookup_latest():
    assert (to_number("75"), to_number("75.50%"), to_number(""), to_number(True)) == (75, 75.5, None, None)
    assert (to_percent("-3"), to_percent(101.5), to_percent(None)) == (0, 100, None)
    assert (to_bool("1"), to_bool(0), to_bool("off"), to_bool("maybe")) == (True, False, False, None)
    assert lookup({"active": "active"}, " Active ") == "active" and lookup({}, "weird") == "unknown"
    assert latest(None, "2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z") == "2024-01-02T00:00:00Z" and latest(None) is None


@pytest.mark.parametrize("value, seconds", [("PT1H30M", 5400), ("PT45S", 45), ("PT90.9S", 90), ("P1DT2H", 93600), ("P2W", 1209600),
                                            ("pt5m", 300), ("", None), (None, None)])
def test_iso_durations(value, seconds):
    assert iso_duration_to_seconds(value) == seconds


@pytest.mark.parametrize("value", ["P1Y", "P3M", "PT", "P", "90 minutes", "1:30:00"])
def test_durations_without_a_fixed_length_or_not_iso_are_refused(value):
    with pytest.raises(ValueError):
        iso_duration_to_seconds(value)

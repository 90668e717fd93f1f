"""Deletions (design.md §5a): the listed-ids encoding, and the base stream's tombstones over complete and cut-short
listings, states of the previous version, ids that come back, provider-marked deletions and sweeps."""

from __future__ import annotations

import random
from typing import Any, Iterable, Mapping

import pytest
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from hypothesis import given, settings
from hypothesis import strategies as st

from source_lms_enrollments.base import LmsStream
from source_lms_enrollments.deletions import (ENCODING, ENCODING_FRONTCODED, ENCODING_PAIRS, ENCODINGS, ListedIds, StateFormatError,
                                              decode_ids, encode_ids)
from unit_tests.test_base import ToyProvider, ToyStream

OLD = "2024-01-01T00:00:00Z"


# ---- the encoding ------------------------------------------------------------------------------------------------
@given(st.sets(st.text(min_size=1, max_size=80)))
@settings(max_examples=200, deadline=None)
def test_encoding_round_trips_any_ids(ids):
    encoded = encode_ids(ids)
    assert encoded["encoding"] in ENCODINGS and encoded["count"] == len(ids)
    assert decode_ids(encoded) == sorted(ids)
    assert decode_ids(encode_ids(ids, ENCODING_FRONTCODED)) == sorted(ids)


PART = st.text(st.characters(blacklist_characters=":", blacklist_categories=("Cs",)), max_size=40)


@given(st.sets(st.tuples(PART, PART), max_size=300))
@settings(max_examples=200, deadline=None)
def test_pair_ids_round_trip_in_every_encoding(pairs):
    ids = {f"{a}:{b}" for a, b in pairs}
    for encoding in (None, *ENCODINGS):
        if encoding == ENCODING_PAIRS and not ids:
            continue
        encoded = encode_ids(ids, encoding)
        assert encoded["count"] == len(ids)
        assert decode_ids(encoded) == sorted(ids)  # the strings' order ("10:3" before "1:5"), whatever the encoding


@given(st.sets(st.sampled_from(["1", "12", "a:b:c", "d", "e:f", ":", "::", "g:", ":h", "1:2:3:4", "x"]), min_size=1))
@settings(max_examples=200, deadline=None)
def test_ids_with_no_colon_or_several_are_never_taken_for_pairs(ids):
    # ":".join(...).split(":") alone would read {"a:b:c", "d"} as the pairs a:b and c:d.
    encoded = encode_ids(ids)
    assert decode_ids(encoded) == sorted(ids)
    if any(i.count(":") != 1 for i in ids):
        assert encoded["encoding"] == ENCODING_FRONTCODED
        with pytest.raises(ValueError):
            encode_ids(ids, ENCODING_PAIRS)


def test_a_state_in_the_first_encoding_still_reads():
    # Written by the version before ENCODING_PAIRS existed: its states keep working.
    assert ENCODING == ENCODING_FRONTCODED
    value = {"encoding": "sorted-frontcoded-zlib-base64/1", "count": 4, "data": "eJxjYDE0sDJmZLIyZWA2AhKM5gATrAIh"}
    assert decode_ids(value) == ["10:3", "1:5", "2:5", "7"]
    assert decode_ids({"encoding": "pairs-indexed-zlib-base64/1", "count": 4,
                       "data": "eJxjZmJhYDRkZDRgYDRiYDRmYDRlZGRkYsADACmRARA="}) == ["10:3", "10:5", "1:5", "2:5"]


def _uuid_pairs(users, courses, per_course):
    rng = random.Random(5)
    uuid = lambda: "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12), rng.getrandbits(16), rng.getrandbits(48))  # noqa: E731
    people, classes = [uuid() for _ in range(users)], [uuid() for _ in range(courses)]
    return {f"{u}:{c}" for c in classes for u in rng.sample(people, per_course)}


def test_pair_ids_take_the_indexed_encoding_and_are_much_smaller():
    rng = random.Random(3)
    numeric = {f"{u}:{c}" for c in range(1, 501) for u in rng.sample(range(1, 2001), 200)}
    uuids = _uuid_pairs(2000, 500, 200)
    for ids, at_most in ((numeric, 0.75), (uuids, 0.25)):
        encoded, frontcoded = encode_ids(ids), encode_ids(ids, ENCODING_FRONTCODED)
        assert encoded["encoding"] == ENCODING_PAIRS
        # Here (100,000 ids): 0.57 of the front-coded size for integers, 0.18 for UUIDs; at 1,000,000 0.58 and 0.08.
        assert len(encoded["data"]) < at_most * len(frontcoded["data"]), (len(encoded["data"]), len(frontcoded["data"]))
        assert decode_ids(encoded) == sorted(ids)


def test_pairs_whose_parts_do_not_repeat_stay_front_coded():
    ids = {f"{n}:{n + 1}" for n in range(1000)}
    assert encode_ids(ids)["encoding"] == ENCODING_FRONTCODED


def test_encoding_is_compact_for_sorted_numeric_pairs():
    rng = random.Random(3)
    ids = {f"{rng.randint(1, 20000)}:{rng.randint(1, 300)}" for _ in range(100_000)}
    encoded = encode_ids(ids)
    raw = sum(len(i) + 1 for i in ids)
    # Front coding + zlib: about a quarter of the plain text (a regression here multiplies every state message).
    assert len(encoded["data"]) < raw / 3, (len(encoded["data"]), raw)
    assert decode_ids(encoded) == sorted(ids)


@pytest.mark.parametrize("value", [
    "not an object",
    {"encoding": "gzip", "data": ""},
    {"encoding": ENCODING, "data": "!!!"},
    {"encoding": ENCODING, "data": "eJwDAAAAAAE="},  # zlib of nothing but announced count below
    {"encoding": ENCODING_PAIRS, "data": "eJxjYmIBAAARAAk="},  # 2 first parts, 2 second parts, 4 ids, then nothing
    {"encoding": ENCODING_PAIRS, "data": "eJwDAAAAAAE="},  # nothing at all
    {"encoding": ENCODING_PAIRS, "count": 1, "data": "eJxjZmJhYDRkZDRgYDRiYDRmYDRlZGRkYsADACmRARA="},
])
def test_unreadable_listed_ids_raise(value):
    if isinstance(value, dict) and value.get("data") == "eJwDAAAAAAE=":
        value = {**value, "count": 3}
    with pytest.raises(StateFormatError):
        decode_ids(value)


def test_listed_ids_commit_keeps_what_a_partial_listing_cannot_judge():
    listed = ListedIds(["1", "2", "3"])
    listed.start()
    assert listed.see("3") is False and listed.see("4") is True and listed.see("4") is False
    listed.commit(complete=False)
    assert listed.known == ["1", "2", "3", "4"]  # a partial listing adds, never removes
    listed.start()
    for record_id in ("2", "4"):
        listed.see(record_id)
    assert listed.gone() == ["1", "3"]
    listed.commit(complete=True)
    assert listed.known == ["2", "4"]


# ---- the base stream -------------------------------------------------------------------------------------------
class ToyLms(ToyProvider):
    """test_base's toy provider, its pages being {parent: [(id, updated_at, status), ...]}, with switches for faults."""

    def __init__(self, config, data):
        super().__init__(config, data)
        self.data = data
        self.fail_on: str | None = None
        self.skip: str | None = None


class ToyEnrollments(ToyStream):
    unified_name = "course_enrollments"
    pair_id = True

    def partitions(self) -> Iterable[dict[str, Any]]:
        yield from ({"parent": key} for key in list(self.provider.data))

    def records_of_slice(self, sync_mode, stream_slice: Mapping[str, Any]):
        parent = stream_slice["parent"]
        if parent == self.provider.fail_on:
            raise AirbyteTracedException(message="HTTP 500 past the retries", failure_type=FailureType.transient_error)
        if parent == self.provider.skip:
            self.listing_cut_short("parent answered 404")
            return
        for record_id, updated_at, status in self.provider.data[parent]:
            yield {"id": record_id, "updated_at": updated_at, "status": status}


class ServerFiltered(ToyEnrollments):
    """Lists only what changed since `since_on_server`, as an API's modified-since filter would."""

    server_side_filter = True
    sent: list[str | None]

    def records_of_slice(self, sync_mode, stream_slice):
        since = self.since_on_server(sync_mode)
        self.sent.append(since)
        for record in super().records_of_slice(sync_mode, stream_slice):
            if since is None or (record["updated_at"] or "") >= since:
                yield record


def toy_data():
    return {
        "c1": [("1:c1", "2024-03-01T00:00:00Z", "enrolled"), ("2:c1", "2024-03-02T00:00:00Z", "completed")],
        "c2": [("1:c2", "2024-03-03T00:00:00Z", "enrolled"), ("3:c2", None, "enrolled")],
    }


def make(state=None, data=None, cls=ToyEnrollments, concurrency=1, **config) -> ToyEnrollments:
    provider = ToyLms({"provider": {"provider_type": "toy", "base_url": "https://toy.example.com"}, "max_concurrency": concurrency, **config},
                      data if data is not None else toy_data())
    stream = cls(provider)
    if cls is ServerFiltered:
        stream.sent = []
    stream.state = state or {}
    return stream


def sync(stream: LmsStream, mode=SyncMode.incremental) -> tuple[list[dict], dict]:
    records = []
    for stream_slice in stream.stream_slices(sync_mode=mode):
        records += [dict(r) for r in stream.read_records(mode, stream_slice=stream_slice)]
    return records, dict(stream.state)


def tombstones(records):
    return [r for r in records if r.get("_ab_cdc_deleted_at")]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_complete_listing_tombstones_exactly_what_is_gone(concurrency):
    data = toy_data()
    first, state = sync(make(data=data, concurrency=concurrency))
    assert not tombstones(first) and all(r["remote_deleted_at"] is None for r in first)
    assert decode_ids(state["listed_ids"]) == ["1:c1", "1:c2", "2:c1", "3:c2"]

    del data["c2"]  # a course deleted: its enrollments are gone with it
    data["c1"].pop(0)
    second, state2 = sync(make(state, data=data, concurrency=concurrency))
    gone = tombstones(second)
    assert sorted(r["id"] for r in gone) == ["1:c1", "1:c2", "3:c2"]
    stone = gone[0]
    assert stone["remote_deleted_at"] == stone["updated_at"] == stone["_ab_cdc_deleted_at"]
    assert stone["user"]["id"] == stone["id"].split(":")[0] and stone["course"]["id"] == stone["id"].split(":")[1]
    assert stone["status"] is None and stone["progress_percent"] is None  # every other field null
    assert second[-len(gone):] == gone  # after the live records
    assert decode_ids(state2["listed_ids"]) == ["2:c1"]
    assert state2["updated_at"] == state["updated_at"]  # a tombstone's time never moves the cursor

    third, _ = sync(make(state2, data=data, concurrency=concurrency))
    assert not tombstones(third)  # each deletion once


def test_a_listing_cut_short_marks_nothing_and_forgets_nothing():
    data = toy_data()
    _, state = sync(make(data=data))
    data["c1"].pop()
    stream = make(state, data=data)
    stream.provider.skip = "c2"  # c2's enrollments answered 404 this time
    records, state2 = sync(stream)
    assert not tombstones(records)
    assert decode_ids(state2["listed_ids"]) == decode_ids(state["listed_ids"])
    records, _ = sync(make(state2, data=data))  # the next complete listing reports it
    assert [r["id"] for r in tombstones(records)] == ["2:c1"]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_failed_read_emits_no_tombstone_and_a_resumed_one_emits_them_all(concurrency):
    data = toy_data()
    _, state = sync(make(data=data, concurrency=concurrency))
    data["c1"].clear()
    stream = make(state, data=data, concurrency=concurrency)
    stream.provider.fail_on = "c2"
    emitted, states = [], []
    with pytest.raises(AirbyteTracedException):
        for stream_slice in stream.stream_slices(sync_mode=SyncMode.incremental):
            emitted += list(stream.read_records(SyncMode.incremental, stream_slice=stream_slice))
            states.append(dict(stream.state))
    assert not tombstones(emitted)
    resume_from = states[-1] if states else state  # the last state the failed sync emitted
    assert resume_from["listed_ids"] == state["listed_ids"]
    records, _ = sync(make(resume_from, data=data, concurrency=concurrency))
    assert sorted(r["id"] for r in tombstones(records)) == ["1:c1", "2:c1"]


def test_a_state_of_the_previous_version_is_nothing_known_never_everything_deleted():
    data = toy_data()
    records, state = sync(make({"updated_at": "2024-03-02T00:00:00Z"}, data=data))
    assert not tombstones(records)
    assert [r["id"] for r in records] == ["2:c1", "1:c2", "3:c2"]  # the cursor still filters as before
    assert decode_ids(state["listed_ids"]) == ["1:c1", "1:c2", "2:c1", "3:c2"]


def test_an_id_that_comes_back_is_emitted_whatever_its_updated_at():
    data = toy_data()
    _, state = sync(make(data=data))
    removed = data["c1"].pop(0)
    _, state = sync(make(state, data=data))
    data["c1"].append(removed)  # restored with its old timestamps, older than the cursor
    records, state = sync(make(state, data=data))
    assert [r["id"] for r in records if r["id"] == removed[0]] == [removed[0]]
    assert removed[0] in decode_ids(state["listed_ids"])


def test_start_date_still_holds_for_new_ids():
    data = toy_data()
    _, state = sync(make(data=data, start_date="2024-03-02T00:00:00Z"))
    data["c1"].append(("9:c1", "2024-02-01T00:00:00Z", "enrolled"))  # new, but older than start_date
    data["c1"].append(("8:c1", "2024-03-02T12:00:00Z", "enrolled"))  # new, after start_date, before the cursor
    records, state = sync(make(state, data=data, start_date="2024-03-02T00:00:00Z"))
    ids = [r["id"] for r in records]
    assert "8:c1" in ids and "9:c1" not in ids
    assert "9:c1" not in decode_ids(state["listed_ids"]) and "1:c1" not in decode_ids(state["listed_ids"])  # never emitted: not tracked
    # 9:c1 and 1:c1 (both before start_date) deleted: no tombstone for a row the destination never had
    data["c1"] = [row for row in data["c1"] if row[0] not in ("9:c1", "1:c1")]
    records, _ = sync(make(state, data=data, start_date="2024-03-02T00:00:00Z"))
    assert not tombstones(records)


def test_full_refresh_emits_live_records_only_and_the_next_sync_compares_with_it():
    data = toy_data()
    _, state = sync(make(data=data))
    data["c2"].clear()
    records, full_state = sync(make(state, data=data), mode=SyncMode.full_refresh)
    assert not tombstones(records) and {r["id"] for r in records} == {"1:c1", "2:c1"}
    assert all(r["remote_deleted_at"] is None for r in records)
    assert decode_ids(full_state["listed_ids"]) == ["1:c1", "2:c1"]  # what the destination now holds
    data["c1"].pop()  # deleted after the full refresh: the next incremental sync reports it
    records, _ = sync(make(full_state, data=data))
    assert [r["id"] for r in tombstones(records)] == ["2:c1"]


def test_full_refresh_without_any_state_still_records_its_listing():
    records, state = sync(make(), mode=SyncMode.full_refresh)
    assert len(records) == 4 and decode_ids(state["listed_ids"]) == ["1:c1", "1:c2", "2:c1", "3:c2"]


def test_no_parents_at_all_is_a_complete_empty_listing():
    data = toy_data()
    _, state = sync(make(data=data))
    data.clear()
    records, state = sync(make(state, data=data))
    assert len(tombstones(records)) == 4 and decode_ids(state["listed_ids"]) == []


def test_a_record_the_provider_marks_deleted_keeps_the_time_it_was_first_seen_so():
    data = toy_data()
    _, state = sync(make(data=data))
    data["c1"][0] = ("1:c1", "2024-05-01T00:00:00Z", "deleted")  # marked deleted now, without saying when
    data["c2"].append(("7:c2", "2024-04-01T00:00:00Z", "deleted"))  # never seen live
    records, state2 = sync(make(state, data=data))
    by_id = {r["id"]: r for r in records}
    seen_at = by_id["1:c1"]["remote_deleted_at"]
    assert seen_at is not None and by_id["7:c2"]["remote_deleted_at"] is None
    assert not tombstones(records)  # still listed: not a tombstone, a record with its deleted status
    assert state2["marked_deleted"] == {"1:c1": seen_at, "7:c2": None}
    data["c1"][0] = ("1:c1", "2030-01-01T00:00:00Z", "deleted")  # changed again later: same deletion time
    records, _ = sync(make(state2, data=data))
    assert {r["id"]: r["remote_deleted_at"] for r in records}["1:c1"] == seen_at


def test_a_server_filtered_stream_compares_only_in_a_sweep():
    data = toy_data()
    first = make(data=data, cls=ServerFiltered)
    _, state = sync(first)
    assert first.sent[0] is None and "swept_at" in state  # a first sync lists everything: it is a sweep
    data["c1"].pop(0)
    second = make(state, data=data, cls=ServerFiltered)
    records, state2 = sync(second)
    assert second.sent[0] == state["updated_at"] and not tombstones(records)  # filtered: nothing can be judged
    assert state2["swept_at"] == state["swept_at"]
    third = make(state2, data=data, cls=ServerFiltered, deletion_sweep_days=0)
    records, state3 = sync(third)
    assert third.sent[0] is None  # swept: everything listed, the cursor filters here
    assert [r["id"] for r in tombstones(records)] == ["1:c1"]
    assert not [r for r in records if not r.get("_ab_cdc_deleted_at") and (r["updated_at"] or "9") < state2["updated_at"]]


@pytest.mark.parametrize("bad", [{"listed_ids": {"encoding": "x"}}, {"marked_deleted": [1]}, {"swept_at": 5}])
def test_a_malformed_deletion_state_is_a_config_error_naming_the_stream(bad):
    with pytest.raises(AirbyteTracedException) as raised:
        make(bad)
    assert raised.value.failure_type == FailureType.config_error and "course_enrollments" in raised.value.message


# ---- a provider's own tombstones (a record that carries _ab_cdc_deleted_at: the provider said when it was deleted) ----
def test_listed_ids_owe_a_provider_tombstone_once_and_forget_the_id():
    listed = ListedIds(["1", "2", "3"])
    listed.start()
    assert listed.owes_tombstone("2") is True and listed.owes_tombstone("2") is False  # once
    assert listed.owes_tombstone("9") is False  # never listed live: nothing to remove downstream
    listed.see("1")
    assert listed.gone() == ["3"]  # the provider's tombstone is not owed a second time by the comparison
    listed.commit(complete=False)
    assert listed.known == ["1", "3"]  # even a partial listing forgets an id whose tombstone was emitted
    listed.start()
    listed.owes_tombstone("3")
    listed.see("1")
    listed.commit(complete=True)
    assert listed.known == ["1"]


class ProviderTombstones(ServerFiltered):
    """A server-filtered stream whose API also lists deleted records with their deletion time (Kombo)."""

    def __init__(self, provider):
        super().__init__(provider)
        self.sent = []

    def records_of_slice(self, sync_mode, stream_slice):
        for record in super().records_of_slice(sync_mode, stream_slice):
            if record["status"] == "gone":
                record = self.tombstone(record["id"], record["updated_at"])
            yield record


def test_a_provider_tombstone_is_emitted_once_with_its_time_even_in_a_filtered_listing():
    data = toy_data()
    _, state = sync(make(data=data, cls=ProviderTombstones))  # first sync: a sweep, every id known
    data["c1"][0] = ("1:c1", "2030-01-01T00:00:00Z", "gone")  # deleted, the provider says when
    data["c2"].append(("9:c2", "2030-01-01T00:00:00Z", "gone"))  # deleted before any sync saw it
    second = make(state, data=data, cls=ProviderTombstones)
    records, state2 = sync(second)
    assert second.sent[0] == state["updated_at"]  # no sweep: the provider's signal alone
    assert [(r["id"], r["remote_deleted_at"], r["updated_at"]) for r in tombstones(records)] == [("1:c1", "2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z")]
    assert state2["updated_at"] == state["updated_at"]  # a tombstone does not move the cursor
    assert "1:c1" not in decode_ids(state2["listed_ids"])
    for sweep in ({}, {"deletion_sweep_days": 0}):  # listed again, filtered or swept: never a second tombstone
        again, _ = sync(make(state2, data=data, cls=ProviderTombstones, **sweep))
        assert not tombstones(again)
    full, _ = sync(make(state, data=data, cls=ProviderTombstones), mode=SyncMode.full_refresh)
    assert not tombstones(full) and {r["id"] for r in full} == {"2:c1", "1:c2", "3:c2"}


def test_a_provider_tombstone_not_committed_is_emitted_again_on_resume():
    data = toy_data()
    _, state = sync(make(data=data, cls=ProviderTombstones))
    data["c1"][0] = ("1:c1", "2030-01-01T00:00:00Z", "gone")
    data["c2"][0] = ("1:c2", "2030-01-01T00:00:00Z", "gone")
    stream = make(state, data=data, cls=ProviderTombstones)
    first_slice = next(iter(stream.stream_slices(sync_mode=SyncMode.incremental)))
    emitted = [r["id"] for r in stream.read_records(SyncMode.incremental, stream_slice=first_slice) if r.get("_ab_cdc_deleted_at")]
    assert emitted == ["1:c1"]  # killed here: the state still holds the old ids
    records, _ = sync(make(state, data=data, cls=ProviderTombstones))
    assert sorted(r["id"] for r in tombstones(records)) == ["1:c1", "1:c2"]

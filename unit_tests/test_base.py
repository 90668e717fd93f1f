"""The shared base: config validation, state parsing, client-side filtering and the no-loss cursor."""

import threading
import time
from typing import Any, Iterable, Mapping

import pytest
import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_lms_enrollments.base import CHUNK_RECORDS, CHUNKS_BUFFERED, LmsProvider, LmsStream, checked_base_url


class ToyProvider(LmsProvider):
    provider_type, title, spec_required, spec_properties = "toy", "Toy", [], {}

    def __init__(self, config, pages):
        super().__init__(config)
        self.api_base = self.config.base_url + "/"
        self.pages = pages

    def streams(self):
        return [ToyStream(self)]

    def check_stream(self):
        return ToyStream(self)


class ToyStream(LmsStream):
    """Three parents, each with its records, arriving out of updated_at order."""

    unified_name = "users"

    def partitions(self) -> Iterable[dict[str, Any]]:
        yield from ({"parent": key} for key in self.provider.pages)

    def path(self, **_):
        return "x"

    def next_page_token(self, response):
        return None

    def parse_response(self, response, **_):
        return []

    def records_of_slice(self, sync_mode, stream_slice: Mapping[str, Any]):
        yield from ({"id": str(i), "updated_at": u} for i, u in self.provider.pages[stream_slice["parent"]])


PAGES = {
    "a": [(1, "2024-03-20T00:00:00Z"), (2, None)],
    "b": [(3, "2024-03-01T00:00:00Z"), (4, "2024-03-05T00:00:00Z")],
    "c": [(5, "2024-02-01T00:00:00Z")],
}


def stream_with(state=None, **config) -> ToyStream:
    stream = ToyStream(ToyProvider({"provider": {"provider_type": "toy", "base_url": "https://toy.example.com"}, **config}, PAGES))
    stream.state = state or {}
    return stream


def read_all(stream: ToyStream, mode=SyncMode.incremental):
    emitted, states = [], []
    for stream_slice in stream.stream_slices(sync_mode=mode):
        emitted += [r["id"] for r in stream.read_records(mode, stream_slice=stream_slice)]
        # The cursor only: the listed ids beside it are test_deletions.py's subject.
        states.append({k: v for k, v in stream.state.items() if k == "updated_at"})
    return emitted, states


def test_cursor_moves_only_after_the_last_slice():
    emitted, states = read_all(stream_with({"updated_at": "2024-03-05T00:00:00Z"}, max_concurrency=1))
    assert emitted == ["1", "2", "4"]  # >= is inclusive; null updated_at always emitted
    assert states == [{"updated_at": "2024-03-05T00:00:00Z"}] * 2 + [{"updated_at": "2024-03-20T00:00:00Z"}]


def test_a_concurrent_fan_out_is_one_slice_that_commits_at_its_end():
    emitted, states = read_all(stream_with({"updated_at": "2024-03-05T00:00:00Z"}, max_concurrency=3))
    assert emitted == ["1", "2", "4"]  # partition order is kept
    assert states == [{"updated_at": "2024-03-20T00:00:00Z"}]


class BigParentsStream(ToyStream):
    """Parents of 5,000 records each; counts what its partitions have produced so far."""

    produced = 0

    def partitions(self):
        yield from ({"parent": key} for key in ("a", "b", "c", "d"))

    def records_of_slice(self, sync_mode, stream_slice):
        if stream_slice["parent"] == "c" and self.provider.pages.get("fail"):
            raise RuntimeError("parent c broke")
        for number in range(5000):
            type(self).produced += 1
            yield {"id": f"{stream_slice['parent']}{number}", "updated_at": None}


def big_stream(**pages) -> BigParentsStream:
    BigParentsStream.produced = 0
    provider = ToyProvider({"provider": {"provider_type": "toy", "base_url": "https://toy.example.com"}, "max_concurrency": 3}, pages)
    return BigParentsStream(provider)


def test_a_fan_out_streams_a_parent_while_reading_it_and_buffers_a_bounded_number_of_records():
    stream = big_stream()
    records = stream.read_records(SyncMode.full_refresh, stream_slice={"fan_out": True, "is_last_slice": True})
    assert next(iter(records))["id"] == "a0"
    time.sleep(0.5)  # let every partition run as far ahead as it may
    # Each running partition holds at most its queue plus the chunk it is filling: never a whole parent.
    assert BigParentsStream.produced <= 3 * (CHUNKS_BUFFERED + 2) * CHUNK_RECORDS < 20000
    assert sum(1 for _ in records) == 19999


def test_a_fan_out_raises_a_partition_error_in_order_and_leaves_no_thread_behind():
    stream = big_stream(fail=True)
    before = threading.active_count()
    ids = []
    with pytest.raises(RuntimeError, match="parent c broke"):
        for record in stream.read_records(SyncMode.full_refresh, stream_slice={"fan_out": True, "is_last_slice": True}):
            ids.append(record["id"])
    assert len(ids) == 10000 and ids[-1] == "b4999"  # every record of the parents before it came out first
    assert threading.active_count() == before


def test_a_fan_out_closed_early_stops_its_partitions():
    stream = big_stream()
    records = stream.read_records(SyncMode.full_refresh, stream_slice={"fan_out": True, "is_last_slice": True})
    next(iter(records))
    assert [t for t in threading.enumerate() if "fan-out" in t.name]  # the pool was running
    records.close()
    # Only this stream's pool threads: other tests' servers may end their own threads meanwhile.
    assert not [t for t in threading.enumerate() if "fan-out" in t.name]


def test_a_resume_from_any_state_message_loses_nothing():
    _, states = read_all(stream_with(max_concurrency=1))
    for state in states[:-1]:
        assert state == {}  # nothing committed before the last slice: a resume re-reads every slice


def test_full_refresh_does_not_filter_but_still_reports_the_latest_cursor():
    emitted, states = read_all(stream_with({"updated_at": "2030-01-01T00:00:00Z"}), SyncMode.full_refresh)
    assert emitted == ["1", "2", "3", "4", "5"]


def test_start_date_applies_on_the_first_incremental_sync_only():
    emitted, _ = read_all(stream_with(start_date="2024-03-02T00:00:00Z"))
    assert emitted == ["1", "2", "4"]
    emitted, _ = read_all(stream_with({"updated_at": "2024-01-01T00:00:00Z"}, start_date="2024-03-02T00:00:00Z"))
    assert emitted == ["1", "2", "3", "4", "5"]


def test_a_future_cursor_is_ignored_rather_than_hiding_records():
    stream = stream_with({"updated_at": "2999-01-01T00:00:00Z"})
    assert stream.state == {}


@pytest.mark.parametrize("state", [{"updated_at": "yesterday"}, {"updated_at": 17}, ["not", "an", "object"]])
def test_a_malformed_state_is_a_config_error_naming_the_stream(state):
    with pytest.raises(AirbyteTracedException) as raised:
        stream_with(state)
    assert raised.value.failure_type == FailureType.config_error and "'users'" in raised.value.message


@pytest.mark.parametrize(
    "url, ok",
    [("https://acme.talentlms.com/", True), ("http://127.0.0.1:8080", True), ("http://localhost:1", True), ("http://[::1]:8", True),
     ("http://acme.talentlms.com", False), ("acme.talentlms.com", False), ("https://user:pw@acme.com", False), ("", False), (None, False)],
)
def test_base_url_rule(url, ok):
    if ok:
        assert not checked_base_url(url).endswith("/")
    else:
        with pytest.raises(AirbyteTracedException) as raised:
            checked_base_url(url)
        assert "provider.base_url" in raised.value.message


def test_start_date_must_be_iso():
    with pytest.raises(AirbyteTracedException) as raised:
        stream_with(start_date="last tuesday")
    assert "start_date" in raised.value.message


class LaggingToyStream(ToyStream):
    cursor_lag_seconds = 300


def test_a_cursor_lag_keeps_the_cursor_behind_the_read_start(monkeypatch):
    import source_lms_enrollments.base as base

    monkeypatch.setattr(base.time, "time", lambda: 1710892800.0)  # 2024-03-20T00:00:00Z: the read begins
    stream = LaggingToyStream(ToyProvider({"provider": {"provider_type": "toy", "base_url": "https://toy.example.com"}}, PAGES))
    stream.state = {}
    emitted, states = read_all(stream)
    assert emitted == ["1", "2", "3", "4", "5"]
    # Record 1 was written at the very instant the read began: the cursor stays five minutes before it, so a
    # record rewritten behind the read comes again next sync.
    assert states[-1] == {"updated_at": "2024-03-19T23:55:00Z"}


def test_without_a_lag_the_cursor_is_the_latest_emitted():
    assert read_all(stream_with())[1][-1] == {"updated_at": "2024-03-20T00:00:00Z"}


def test_request_budget_combines_the_users_cap_with_the_providers_per_second_limit():
    from source_lms_enrollments.base import request_budget

    def rates(budget):  # (limit, interval in ms) as the CDK's policy holds them
        return [(rate.limit, rate.interval) for rate in budget._policies[0]._bucket.rates]  # noqa: SLF001

    assert request_budget(None, None) is None
    assert rates(request_budget(None, 8)) == [(1, 125)]  # evenly spaced, not bursts of 8
    assert rates(request_budget(120, None)) == [(120, 60000)]
    assert rates(request_budget(120, 8)) == [(1, 125), (120, 60000)]
    # A cap another one implies is left out (the CDK's policy wants ascending limits and non-ascending rates).
    assert rates(request_budget(1, 8)) == [(1, 60000)]
    assert rates(request_budget(480, 8)) == [(1, 125)]
    assert rates(request_budget(6000, 8)) == [(1, 125)]


def test_an_answer_is_parsed_once_whichever_thread_asks_first():
    from source_lms_enrollments.base import parsed_once

    response, calls = requests.Response(), []

    def parse(answer):
        calls.append(answer)
        return {"items": [1]}

    pages = []
    threads = [threading.Thread(target=lambda: pages.append(parsed_once(response, parse))) for _ in range(2)]
    for thread in threads:
        thread.start()
        thread.join()
    assert pages == [{"items": [1]}, {"items": [1]}] and calls == [response]


# ---- OffsetPageStream: limit / offset paging ------------------------------------------------------------------------
from source_lms_enrollments.base import OffsetPageStream  # noqa: E402


class OffsetToyStream(OffsetPageStream):
    unified_name = "users"
    page_size = 2

    def path(self, **_):
        return "items"

    def list_params(self, stream_slice):
        return {"kind": "x"}

    def parse_response(self, response, **_):
        yield from ({"id": item["id"], "updated_at": None} for item in self.records_of(response))


def offset_stream(page_size=None) -> OffsetToyStream:
    provider = ToyProvider({"provider": {"provider_type": "toy", "base_url": "https://toy.example.com"}}, {})
    return OffsetToyStream(provider, max_retries=0, page_size=page_size)


def test_offset_paging_walks_until_a_short_page_and_sends_limit_offset_and_own_params():
    import requests_mock

    items = [{"id": str(i)} for i in range(5)]
    with requests_mock.Mocker() as mock:
        mock.get("https://toy.example.com/items", json=lambda request, _: items[int(request.qs["offset"][0]):][: int(request.qs["limit"][0])])
        ids = [r["id"] for r in offset_stream().records_of_slice(SyncMode.full_refresh, {})]
        sent = [(q.qs["offset"][0], q.qs["limit"][0], q.qs["kind"][0]) for q in mock.request_history]
    assert ids == ["0", "1", "2", "3", "4"]
    assert sent == [("0", "2", "x"), ("2", "2", "x"), ("4", "2", "x")]  # the third page has 1 item: the last


def test_offset_paging_stops_on_an_empty_page_when_the_total_is_a_multiple_of_the_limit():
    import requests_mock

    items = [{"id": str(i)} for i in range(4)]
    with requests_mock.Mocker() as mock:
        mock.get("https://toy.example.com/items", json=lambda request, _: items[int(request.qs["offset"][0]):][:2])
        ids = [r["id"] for r in offset_stream().records_of_slice(SyncMode.full_refresh, {})]
        offsets = [q.qs["offset"][0] for q in mock.request_history]
    assert ids == ["0", "1", "2", "3"] and offsets == ["0", "2", "4"]


def test_offset_paging_refuses_an_api_that_ignores_offset_instead_of_looping():
    import requests_mock

    with requests_mock.Mocker() as mock:
        mock.get("https://toy.example.com/items", json=[{"id": "a"}, {"id": "b"}])
        with pytest.raises(AirbyteTracedException) as error:
            list(offset_stream().records_of_slice(SyncMode.full_refresh, {}))
        assert len(mock.request_history) == 2
    assert error.value.failure_type == FailureType.system_error and "repeats the previous page" in error.value.message


@pytest.mark.parametrize("body", [{"items": []}, [{"name": "no id"}], ["x"]])
def test_offset_paging_names_the_endpoint_of_a_body_that_is_not_an_array_of_items(body):
    import requests_mock

    with requests_mock.Mocker() as mock:
        mock.get("https://toy.example.com/items", json=body)
        with pytest.raises(AirbyteTracedException) as error:
            list(offset_stream().records_of_slice(SyncMode.full_refresh, {}))
    assert error.value.failure_type == FailureType.system_error and "/items" in error.value.message

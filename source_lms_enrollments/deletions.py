"""Deletions (design.md §5a): what a stream remembers of its last listing, and the tombstones it owes.

A stream whose listing is complete in this sync (read in full, or a server-filtered stream's periodic sweep)
compares the ids it lists with the ids its previous complete listing held; an id gone since is emitted once
more as a tombstone. The ids live in the stream's state, compressed (sorted and front-coded; "user:course" pairs
as indexes into their distinct parts), so that a million enrollments fit in one or two megabytes. They are
replaced only when the stream's last slice has been read and its tombstones emitted: a sync cut short or killed
before that keeps the old ids, and the next sync compares again (every tombstone is emitted once or more, never
lost, never false).

`ListedIds` is the per-sync bookkeeping; `encode_ids` / `decode_ids` are the state's encoding.
"""

from __future__ import annotations

import base64
import itertools
import operator
import sys
import zlib
from array import array
from typing import Any, Collection, Iterable, Iterator, Mapping

# The key of a stream's state that holds its listed ids, and the encodings' names (a new encoding gets a new name;
# every name here stays readable). `encode_ids` writes `ENCODING_PAIRS` when the ids are "a:b" pairs whose parts
# repeat (enrollments: "{user}:{course}"), else `ENCODING_FRONTCODED`.
STATE_KEY = "listed_ids"
ENCODING_FRONTCODED = "sorted-frontcoded-zlib-base64/1"
ENCODING_PAIRS = "pairs-indexed-zlib-base64/1"
ENCODINGS = (ENCODING_FRONTCODED, ENCODING_PAIRS)
ENCODING = ENCODING_FRONTCODED  # the first encoding's name, as earlier code imported it


class StateFormatError(ValueError):
    """A `listed_ids` entry that this version cannot read."""


def encode_ids(ids: Iterable[str], encoding: str | None = None) -> dict[str, Any]:
    """`{"encoding", "count", "data"}`: the ids, compact. `encoding` forces one of `ENCODINGS` (the bench compares
    them); by default pairs whose parts repeat are indexed, anything else front-coded.

    `ENCODING_FRONTCODED`: the ids sorted, each written as (bytes shared with the previous id, the rest), then zlib.
    Sorted ids share long prefixes (`"1234:5"`, `"1234:6"`), so front coding followed by zlib beats zlib alone by
    2.5x on numeric ids (measured: 1,000,000 `user:course` ids, 10.9 MB as text, 2.4 MB here).

    `ENCODING_PAIRS`: for "a:b" ids (one colon each): the distinct first parts and the distinct second parts, each
    sorted and front-coded once, then every id as a number (index of a × number of second parts + index of b),
    sorted and written as differences from the previous one, little-endian in 8 bytes laid out byte plane by byte
    plane (all lowest bytes, then all second bytes...: the high planes are zeros that zlib all but removes), then
    zlib. A course's UUID is written once, not once per learner (bench/README.md has the figures: 1,000,000
    "uuid:uuid" enrollments take 2.1 MB instead of 25 MB, "user:course" integers 1.4 MB instead of 2.4 MB).
    """
    unique = ids if isinstance(ids, (set, frozenset)) or _strictly_increasing(ids) else set(ids)
    parts = _pair_parts(unique) if encoding in (None, ENCODING_PAIRS) and _is_pairs(unique) else None
    if encoding is None:
        encoding = ENCODING_PAIRS if parts is not None and _parts_repeat(unique, parts) else ENCODING_FRONTCODED
    if encoding == ENCODING_PAIRS:
        if parts is None:
            raise ValueError(f"{ENCODING_PAIRS} needs ids of the form \"a:b\" (one colon each)")
        raw = _encode_pairs(unique, parts)
    elif encoding == ENCODING_FRONTCODED:
        raw = _front_code(unique if isinstance(unique, list) else sorted(unique))
    else:
        raise ValueError(f"unknown encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    data = base64.b64encode(zlib.compress(raw, 6)).decode("ascii")
    return {"encoding": encoding, "count": len(unique), "data": data}


def _strictly_increasing(ids: Iterable[str]) -> bool:
    """A sorted list without repeats (what `ListedIds.commit` passes): used as it is, no set of a million ids more."""
    return isinstance(ids, list) and all(map(operator.lt, ids, itertools.islice(ids, 1, None)))


def decode_ids(value: Any) -> list[str]:
    """The sorted ids of an `encode_ids` value (any of `ENCODINGS`); StateFormatError for anything else."""
    if not isinstance(value, Mapping) or value.get("encoding") not in ENCODINGS or not isinstance(value.get("data"), str):
        raise StateFormatError(f"expected {{\"encoding\": one of {', '.join(ENCODINGS)}, \"count\": …, \"data\": …}}")
    try:
        raw = zlib.decompress(base64.b64decode(value["data"].encode("ascii"), validate=True))
    except (ValueError, zlib.error) as error:
        raise StateFormatError(f"its data cannot be decoded ({error})") from None
    try:
        if value["encoding"] == ENCODING_PAIRS:
            ids = _decode_pairs(raw)
        else:
            ids, _ = _front_decode(raw, 0, None)
    except (IndexError, UnicodeDecodeError, ValueError, OverflowError) as error:
        raise StateFormatError(f"its data is corrupt ({error})") from None
    if value.get("count") not in (None, len(ids)):
        raise StateFormatError(f"it announces {value.get('count')} ids and holds {len(ids)}")
    return ids


def _front_code(ordered: list[str]) -> bytes:
    """Sorted strings as (bytes shared with the previous one, up to 255; length of the rest as a varint; the rest)."""
    out = bytearray()
    previous = b""
    for text in ordered:
        current = text.encode()
        limit = min(len(previous), len(current), 255)
        shared = 0
        while shared < limit and previous[shared] == current[shared]:
            shared += 1
        rest = current[shared:]
        out.append(shared)
        _write_varint(out, len(rest))
        out += rest
        previous = current
    return bytes(out)


def _front_decode(raw: bytes, position: int, count: int | None) -> tuple[list[str], int]:
    """`count` strings written by `_front_code` from `position` (None: up to the end), and the position after them."""
    ids: list[str] = []
    previous = b""
    end = len(raw)
    while (position < end) if count is None else (len(ids) < count):
        shared = raw[position]
        length, position = _read_varint(raw, position + 1)
        current = previous[:shared] + raw[position:position + length]
        if len(current) != shared + length:
            raise StateFormatError("its data is truncated")
        position += length
        ids.append(current.decode())
        previous = current
    return ids, position


def _is_pairs(unique: Collection[str]) -> bool:
    """Every id has exactly one colon ("a:b")."""
    counts = map(str.count, unique, itertools.repeat(":"))
    return bool(unique) and min(counts) == 1 and max(map(str.count, unique, itertools.repeat(":"))) == 1


def _pair_chunks(unique: Collection[str], size: int = 65536) -> Iterator[tuple[list[str], list[str]]]:
    """The first and second parts of "a:b" ids, a chunk at a time (the parts of a million ids at once would be
    two million strings: ~100 MB more at the peak of a sync)."""
    iterator = iter(unique)
    while chunk := list(itertools.islice(iterator, size)):
        parts = ":".join(chunk).split(":")
        yield parts[0::2], parts[1::2]


def _pair_parts(unique: Collection[str]) -> tuple[list[str], list[str]]:
    """The distinct first parts and the distinct second parts, each sorted."""
    firsts: set[str] = set()
    seconds: set[str] = set()
    for first, second in _pair_chunks(unique):
        firsts.update(first)
        seconds.update(second)
    return sorted(firsts), sorted(seconds)


def _parts_repeat(unique: Collection[str], parts: tuple[list[str], list[str]]) -> bool:
    """Whether the pairs' distinct parts are fewer than the ids (each part is then written once for many ids)."""
    return len(parts[0]) + len(parts[1]) <= len(unique)


def _encode_pairs(unique: Collection[str], parts: tuple[list[str], list[str]]) -> bytes:
    first_list, second_list = parts
    first_index = dict(zip(first_list, range(len(first_list))))
    second_index = dict(zip(second_list, range(len(second_list))))
    width = len(second_list)
    numbers = array("Q")
    for firsts, seconds in _pair_chunks(unique):
        numbers.extend(map(lambda a, b: a * width + b, map(first_index.__getitem__, firsts), map(second_index.__getitem__, seconds)))
    keys = sorted(numbers)
    del numbers
    deltas = array("Q", keys[:1])
    deltas.extend(itertools.starmap(_minus, itertools.pairwise(keys)))
    del keys
    if sys.byteorder == "big":
        deltas.byteswap()
    packed = deltas.tobytes()
    del deltas
    head = bytearray()
    for number in (len(first_list), len(second_list), len(packed) // 8):
        _write_varint(head, number)
    return b"".join([bytes(head), _front_code(first_list), _front_code(second_list), *(packed[plane::8] for plane in range(8))])


def _minus(earlier: int, later: int) -> int:
    return later - earlier


def _decode_pairs(raw: bytes) -> list[str]:
    first_count, position = _read_varint(raw, 0)
    second_count, position = _read_varint(raw, position)
    count, position = _read_varint(raw, position)
    first_list, position = _front_decode(raw, position, first_count)
    second_list, position = _front_decode(raw, position, second_count)
    if len(raw) - position != 8 * count:
        raise StateFormatError("its data is truncated")
    packed = bytearray(8 * count)
    for plane in range(8):
        packed[plane::8] = raw[position + plane * count:position + (plane + 1) * count]
    deltas = array("Q")
    deltas.frombytes(bytes(packed))
    if sys.byteorder == "big":
        deltas.byteswap()
    if deltas.count(0) > (1 if count and deltas[0] == 0 else 0):  # a difference of 0 (corrupt data) repeats an id
        raise StateFormatError("its data repeats an id")
    width = second_count
    ids = [f"{first_list[key // width]}:{second_list[key % width]}" for key in itertools.accumulate(deltas)]
    ids.sort()  # the order of the strings (`"10:3"` < `"1:5"`), as every encoding's decode returns
    return ids


def _write_varint(out: bytearray, number: int) -> None:
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)


def _read_varint(raw: bytes, position: int) -> tuple[int, int]:
    number = shift = 0
    while True:
        byte = raw[position]
        position += 1
        number |= (byte & 0x7F) << shift
        if byte < 0x80:
            return number, position
        shift += 7


class ListedIds:
    """One stream's listed ids across a sync: what the state brought, what this sync lists, what is gone.

    `known` is None when nothing is known yet (a first sync, or a state written before deletions were tracked):
    then nothing can be gone, and the first complete listing becomes what is known.
    """

    def __init__(self, known: list[str] | None, encoded: Mapping[str, Any] | None = None) -> None:
        self.known = known
        self.encoded = dict(encoded) if encoded is not None else None  # kept as it came until replaced
        self.unseen: set[str] = set(known) if known is not None else set()
        self.new: set[str] = set()
        self.tombstoned: set[str] = set()  # ids the provider itself said were deleted, in this read

    @classmethod
    def from_state(cls, value: Any) -> "ListedIds":
        if value is None:
            return cls(None)
        return cls(decode_ids(value), value)

    def start(self) -> None:
        """A new read of the stream begins: nothing of it has been seen yet."""
        self.unseen = set(self.known) if self.known is not None else set()
        self.new = set()
        self.tombstoned = set()

    def owes_tombstone(self, record_id: str) -> bool:
        """The provider says `record_id` was deleted (its own signal, with a time): True, once, when the last
        complete listing held the id, so that its tombstone is emitted; the id is then neither gone (no second
        tombstone) nor kept (forgotten at commit). False for an id never listed live, or already forgotten."""
        if record_id in self.unseen:
            self.unseen.discard(record_id)
            self.tombstoned.add(record_id)
            return True
        return False

    def see(self, record_id: str) -> bool:
        """Note a listed id; True when it was not in the last complete listing (new, or back after a deletion)."""
        unseen = self.unseen
        if record_id in unseen:
            unseen.discard(record_id)
            return False
        if self.known is None:
            self.new.add(record_id)
            return False  # nothing known: nothing is "new" in the sense that bypasses the cursor
        if record_id in self.new:
            return False
        self.new.add(record_id)
        return True

    def gone(self) -> list[str]:
        """The ids of the last complete listing that this listing did not show, sorted."""
        return sorted(self.unseen)

    def commit(self, complete: bool, tombstoned: Iterable[str] = ()) -> None:
        """End of the read. A complete listing replaces what is known with what was listed; an incomplete one (a
        server-filtered read) adds what it listed and forgets only ids whose tombstone was emitted."""
        tombstoned = set(tombstoned) | self.tombstoned
        if complete:
            kept = [i for i in self.known if i not in self.unseen and i not in tombstoned] if self.known is not None else []
        else:
            if self.known is None:
                # Nothing was known and this listing is partial: what it shows is not a basis for comparison yet.
                self.new = set()
                self.unseen = set()
                return
            dropped = set(tombstoned)
            kept = [i for i in self.known if i not in dropped] if dropped else list(self.known)
        # Memory: at a million ids each extra copy of the set costs tens of megabytes, so the sets are merged in
        # place and dropped before encoding (tracemalloc, 1,000,000 pair ids on a first sync: the commit's peak went
        # from 109 MB to 77 MB, the ids' set being 32 MB).
        self.unseen, self.tombstoned = set(), set()
        new, self.new = self.new, set()
        if new:
            new.update(kept)  # a complete listing's new ids may repeat a kept one (an id listed twice)
            del kept
            known = sorted(new)
            del new
        else:
            known = kept
        self.known = known
        self.encoded = encode_ids(known)

"""Deletions (design.md §5a): what a stream remembers of its last listing, and the tombstones it owes.

A stream whose listing is complete in this sync (read in full, or a server-filtered stream's periodic sweep)
compares the ids it lists with the ids its previous complete listing held; an id gone since is emitted once
more as a tombstone. The ids live in the stream's state, sorted, front-coded and compressed, so that a million
enrollments fit in a few megabytes. They are replaced only when the stream's last slice has been read and its
tombstones emitted: a sync cut short or killed before that keeps the old ids, and the next sync compares again
(every tombstone is emitted once or more, never lost, never false).

`ListedIds` is the per-sync bookkeeping; `encode_ids` / `decode_ids` are the state's encoding.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any, Iterable, Mapping

# The key of a stream's state that holds its listed ids, and the encoding's name (a new encoding gets a new name).
STATE_KEY = "listed_ids"
ENCODING = "sorted-frontcoded-zlib-base64/1"


class StateFormatError(ValueError):
    """A `listed_ids` entry that this version cannot read."""


def encode_ids(ids: Iterable[str]) -> dict[str, Any]:
    """`{"encoding", "count", "data"}`: the ids sorted, each written as (bytes shared with the previous id, the rest).

    Sorted ids share long prefixes (`"1234:5"`, `"1234:6"`), so front coding followed by zlib beats zlib alone by
    2.5x on numeric ids (measured: 1,000,000 `user:course` ids, 10.9 MB as text, 2.1 MB here).
    """
    ordered = sorted(set(ids))
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
    data = base64.b64encode(zlib.compress(bytes(out), 6)).decode("ascii")
    return {"encoding": ENCODING, "count": len(ordered), "data": data}


def decode_ids(value: Any) -> list[str]:
    """The sorted ids of an `encode_ids` value; StateFormatError for anything else."""
    if not isinstance(value, Mapping) or value.get("encoding") != ENCODING or not isinstance(value.get("data"), str):
        raise StateFormatError(f"expected {{\"encoding\": \"{ENCODING}\", \"count\": …, \"data\": …}}")
    try:
        raw = zlib.decompress(base64.b64decode(value["data"].encode("ascii"), validate=True))
    except (ValueError, zlib.error) as error:
        raise StateFormatError(f"its data cannot be decoded ({error})") from None
    ids: list[str] = []
    previous = b""
    position, end = 0, len(raw)
    try:
        while position < end:
            shared = raw[position]
            length, position = _read_varint(raw, position + 1)
            current = previous[:shared] + raw[position:position + length]
            if len(current) != shared + length:
                raise StateFormatError("its data is truncated")
            position += length
            ids.append(current.decode())
            previous = current
    except (IndexError, UnicodeDecodeError) as error:
        raise StateFormatError(f"its data is corrupt ({error})") from None
    if value.get("count") not in (None, len(ids)):
        raise StateFormatError(f"it announces {value.get('count')} ids and holds {len(ids)}")
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
        known = sorted(set(kept).union(self.new)) if self.new else kept
        self.known = known
        self.encoded = encode_ids(known)
        self.unseen = set()
        self.new = set()
        self.tombstoned = set()

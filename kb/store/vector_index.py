"""Check embedded Chroma's HNSW files before any process loads them.

Chroma persists a collection's vector index as hnswlib files in a folder named after
its vector segment (`DATA_DIR/chroma/<segment id>/`). hnswlib trusts those files: a
truncated header or garbage link lists make the process that loads them crash
(SIGSEGV) instead of raising. And a deleted folder is worse: Chroma rebuilds the
index from the part of its log not yet persisted, so vector search silently loses
every vector persisted before. So we read the files ourselves first (sizes, header
fields, every link in range) and name the damage; `kb ingest` then rebuilds the
index from the chunks (`ingest/repair.py`).

The checks follow hnswlib's persisted layout as Chroma 1.x writes it:

    header.bin       int32 format version, then offsetLevel0, max_elements,
                     cur_element_count, size_data_per_element, label_offset, offsetData
                     (size_t each), maxlevel (int32), enterpoint (uint32), maxM, maxM0,
                     M (size_t each), mult (double), ef_construction (size_t)
    data_level0.bin  per element: link count (uint16 in a uint32), maxM0 neighbour
                     ids (uint32), the vector, the label (size_t)
    length.bin       per element: the vector's norm (float32)
    link_lists.bin   per element: byte size (uint32), then one block per upper
                     level: link count (uint32) and maxM neighbour ids (uint32)

Where Chroma's own tables cannot be read (another layout), nothing is reported.
"""

from __future__ import annotations

import math
import sqlite3
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.core.settings import Settings

HEADER = struct.Struct("<i6QiI3QdQ")
SIZE = struct.Struct("<I")
VECTOR_SEGMENT = "urn:chroma:segment/vector/hnsw-local-persisted"
FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")
MAX_LINKS = 4096  # far above any M Chroma allows; a larger count is garbage
RETRIES = 3  # reads that find damage, while another process may be writing the files


class Damaged(Exception):
    """One problem with the HNSW files of a segment."""


_SOUND: dict[tuple[Path, str], tuple[tuple[str, int, int], ...]] = {}  # checked, per state


def vector_index_problem(settings: Settings) -> tuple[Path, str] | None:
    """Damage to the embedded store's persisted vector index of `settings`: the file and
    what is wrong with it, or None (a Chroma server guards its own files)."""
    if settings.chroma_url:
        return None
    return vector_index_damage(settings.data_dir / "chroma", settings.collection)


def vector_index_damage(chroma_dir: Path, collection: str) -> tuple[Path, str] | None:
    """The folder of `collection`'s persisted vector index and what is wrong with it,
    or None when it is sound (or nothing is persisted yet). A problem is confirmed by
    reading again, so a file caught mid-write by another process is not reported. A
    process checks each state of the files (sizes, modification times) once."""
    stamps = _stamps(chroma_dir)
    if _SOUND.get((chroma_dir, collection)) == stamps:
        return None
    for attempt in range(RETRIES):
        found = _damage_once(chroma_dir, collection)
        if found is None:
            _SOUND[(chroma_dir, collection)] = stamps
            return None
        if attempt < RETRIES - 1:
            time.sleep(0.3)
    return found


def stored_vectors(chroma_dir: Path, collection: str) -> int | None:
    """How many records Chroma's tables list for `collection` (None if they cannot say),
    read without starting Chroma."""
    segment = _vector_segment(chroma_dir, collection)
    return segment.stored if segment is not None else None


def _stamps(chroma_dir: Path) -> tuple[tuple[str, int, int], ...]:
    found = []
    for path in sorted([chroma_dir / "chroma.sqlite3", *chroma_dir.glob("*/*.bin")]):
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def _damage_once(chroma_dir: Path, collection: str) -> tuple[Path, str] | None:
    segment = _vector_segment(chroma_dir, collection)
    if segment is None:
        return None
    folder = chroma_dir / segment.id
    if not folder.is_dir():
        if segment.persisted_seq is not None:
            return folder, (
                "the vector index folder is missing: vector search would see only the "
                "vectors written since it was last saved"
            )
        return None
    try:
        held = check_hnsw_files(folder)
    except Damaged as exc:
        return folder, str(exc)
    # Deleted vectors keep their slots, so saved + logged can only exceed what is stored.
    if held is not None and held + segment.logged < segment.stored:
        return folder, (
            f"the vector index holds {held} vectors and the log {segment.logged} more, but "
            f"the store lists {segment.stored}: vector search has lost vectors"
        )
    return None


@dataclass(frozen=True)
class Segment:
    id: str
    persisted_seq: int | None  # the last log entry saved into the HNSW files
    logged: int  # log entries after it (an upper bound: all collections' entries)
    stored: int  # records of the collection in Chroma's metadata segment


def _vector_segment(chroma_dir: Path, collection: str) -> Segment | None:
    """The collection's vector segment as Chroma's tables describe it."""
    database = chroma_dir / "chroma.sqlite3"
    if not database.exists():
        return None
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as con:
            row = con.execute(
                "SELECT s.id, m.seq_id, c.id FROM segments s "
                "JOIN collections c ON s.collection = c.id "
                "LEFT JOIN max_seq_id m ON m.segment_id = s.id WHERE c.name = ? AND s.type = ?",
                (collection, VECTOR_SEGMENT),
            ).fetchone()
            if row is None:
                return None
            logged = con.execute(
                "SELECT COUNT(*) FROM embeddings_queue WHERE seq_id > ?", (row[1] or 0,)
            ).fetchone()[0]
            stored = con.execute(
                "SELECT COUNT(*) FROM embeddings e JOIN segments s ON e.segment_id = s.id "
                "WHERE s.collection = ?",
                (row[2],),
            ).fetchone()[0]
    except sqlite3.Error:
        return None  # not a layout we know (or locked): Chroma reports its own errors
    return Segment(str(row[0]), row[1], int(logged), int(stored))


def check_hnsw_files(folder: Path) -> int | None:
    """How many vectors the HNSW files in `folder` hold (None: not written yet, as in a
    small collection that lives in Chroma's log); `Damaged` naming the first problem."""
    if not (folder / "header.bin").exists():
        return None
    sizes = {}
    for name in FILES:
        path = folder / name
        if not path.exists():
            raise Damaged(f"{name} is missing")
        sizes[name] = path.stat().st_size
    raw = (folder / "header.bin").read_bytes()
    if len(raw) != HEADER.size:
        raise Damaged(f"header.bin has {len(raw)} bytes, not {HEADER.size}")
    (
        _format,
        offset_level0,
        max_elements,
        count,
        element_size,
        label_offset,
        offset_data,
        max_level,
        entry_point,
        max_m,
        max_m0,
        m,
        mult,
        _ef,
    ) = HEADER.unpack(raw)
    sane = (
        offset_level0 == 0
        and count <= max_elements
        and 0 < m <= max_m <= max_m0 <= MAX_LINKS
        and offset_data == max_m0 * 4 + 4
        and label_offset > offset_data
        and (label_offset - offset_data) % 4 == 0
        and element_size == label_offset + 8
        and (0 <= max_level < 64 and entry_point < count or count == max_level + 1 == 0)
        and math.isfinite(mult)
    )
    if not sane:
        raise Damaged("header.bin holds values no index has: it is damaged")
    if sizes["data_level0.bin"] < count * element_size:
        raise Damaged(f"data_level0.bin is too short for {count} vectors")
    if sizes["length.bin"] < count * 4:
        raise Damaged(f"length.bin is too short for {count} vectors")
    _check_level0(folder / "data_level0.bin", count, element_size, max_m0)
    _check_upper_levels(folder / "link_lists.bin", count, max_m, max_level)
    return int(count)


def _check_level0(path: Path, count: int, element_size: int, max_m0: int) -> None:
    if count == 0:
        return
    rows = np.memmap(path, dtype=np.uint8, mode="r", shape=(count, element_size))
    links = np.ascontiguousarray(rows[:, : 4 + 4 * max_m0]).view(np.uint32)
    sizes = links[:, 0] & 0xFFFF
    if (sizes > max_m0).any():
        raise Damaged("data_level0.bin has an element with more links than the index allows")
    used = np.arange(max_m0) < sizes[:, None]
    if (links[:, 1:][used] >= count).any():
        raise Damaged("data_level0.bin links to elements that do not exist")


def _check_upper_levels(path: Path, count: int, max_m: int, max_level: int) -> None:
    raw = path.read_bytes()
    data = np.frombuffer(raw, dtype=np.uint8)
    block = (max_m + 1) * 4
    at = 0
    for _ in range(count):
        if at + 4 > len(data):
            raise Damaged("link_lists.bin is shorter than its elements need")
        (size,) = SIZE.unpack_from(raw, at)
        at += 4
        if size == 0:
            continue
        if size % block or size // block > max_level or at + size > len(data):
            raise Damaged("link_lists.bin holds a link list of an impossible size")
        levels = data[at : at + size].view(np.uint32).reshape(-1, max_m + 1)
        at += size
        if (levels[:, 0] > max_m).any():
            raise Damaged("link_lists.bin has an element with more links than the index allows")
        used = np.arange(max_m) < levels[:, :1]
        if (levels[:, 1:][used] >= count).any():
            raise Damaged("link_lists.bin links to elements that do not exist")
    if at != len(data):
        raise Damaged("link_lists.bin is longer than its elements need")

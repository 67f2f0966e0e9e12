"""A torn last line of ``events.jsonl`` (a trainer killed mid-append) is cut on resume, so
the next event gets a line of its own; the last event is read from the file's tail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuilora.runs import events as events_module
from tuilora.runs.events import (
    EventReader,
    EventWriter,
    iter_events,
    last_event,
    read_events,
    repair_torn_tail,
)


def test_a_torn_last_line_is_cut_and_the_next_event_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        writer.emit("step", step=1, loss=0.5)
    whole = path.read_bytes()
    assert repair_torn_tail(path) == 0 and path.read_bytes() == whole  # nothing torn
    torn = b'{"t": 1.0, "type": "step", "st'
    path.write_bytes(whole + torn)
    assert repair_torn_tail(path) == len(torn)
    assert path.read_bytes() == whole
    with EventWriter(path) as writer:
        writer.emit("end", status="finished", step=1, final=None, message="")
    assert [e["type"] for e in read_events(path)] == ["step", "end"]
    assert last_event(path) == read_events(path)[-1]


def test_a_file_of_one_torn_line_longer_than_a_block_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert events_module.TAIL_BLOCK < 150_000  # the tail is read in blocks: several here
    path.write_bytes(json.dumps({"type": "step", "x": "y" * 200_000}).encode()[:150_000])
    assert repair_torn_tail(path) == 150_000 and path.read_bytes() == b""
    assert repair_torn_tail(tmp_path / "missing.jsonl") == 0
    assert last_event(path) is None


def test_events_stream_in_blocks_with_lines_cut_across_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        for step in range(1, 201):
            writer.emit("step", step=step, loss=1.0 / step, lr={"unet": 1e-4})
    whole = read_events(path)
    monkeypatch.setattr(events_module, "READ_BLOCK", 97)  # every line is cut by a block end
    reader = EventReader(path)
    assert list(reader.iter_new()) == whole and reader.offset == path.stat().st_size
    with path.open("ab") as handle:
        handle.write(b'{"t": 2.0, "type": "end", "status": "fin')  # torn: kept for later
    assert list(reader.iter_new()) == []
    with path.open("ab") as handle:
        handle.write(b'ished", "step": 200}\n')
    assert [e["type"] for e in reader.iter_new()] == ["end"]
    assert [e["step"] for e in iter_events(path)] == [*range(1, 201), 200]


def test_a_full_disk_never_leaves_half_an_event_and_raises_once(tmp_path: Path) -> None:
    import errno

    from tuilora.fileio import NoSpaceError

    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.emit("step", step=1, loss=0.5)
    whole = path.read_bytes()
    real = writer._handle

    class FullDisk:  # takes 10 bytes, then the disk is full (what ENOSPC / EFBIG do)
        def __init__(self) -> None:
            self.taken = False

        def fileno(self) -> int:
            return real.fileno()

        def write(self, data: memoryview) -> int:
            if self.taken:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.taken = True
            return real.write(data[:10])

    writer._handle = FullDisk()  # type: ignore[assignment]
    with pytest.raises(NoSpaceError, match="events.jsonl: no space to write it"):
        writer.emit("step", step=2, loss=0.4)
    assert path.read_bytes() == whole  # the 10 bytes were cut back
    writer.emit("end", status="crashed", step=2, final=None, message="")  # no second raise
    writer._handle = real
    writer.close()
    assert [e["step"] for e in read_events(path)] == [1]

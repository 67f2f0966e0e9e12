"""A torn last line of ``events.jsonl`` (a trainer killed mid-append) is cut on resume, so
the next event gets a line of its own; the last event is read from the file's tail."""

from __future__ import annotations

import json
from pathlib import Path

from tuilora.runs import events as events_module
from tuilora.runs.events import EventWriter, last_event, read_events, repair_torn_tail


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

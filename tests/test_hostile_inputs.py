"""Hostile and broken inputs through the CLI (issue 17, items 3 and 3b), without torch.

Each case is one user-facing command on a damaged or malicious file or value; the promise is
the same for all: exit 2, one line on stderr naming the file or the field, nothing written,
never a traceback (``main`` lets any other exception through, so a test fails on it). Runs
with damaged ``events.jsonl`` files must not break the listing, ``watch`` or ``diagnose``.
The counts in docs/reliability.md (hostile inputs) come from these tables.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from tuilora.cli import main

DEEP = 5000  # far past Python's recursion limit (1000)
SHALLOW_BUT_DEEP = 200  # parses without RecursionError, still beyond MAX_NESTING


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    captured = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else 0), captured.out, captured.err


def assert_one_line_error(err: str, *names: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tuilora: error: "), err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, err)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


# -- TOML and JSON nested past the recursion limit --------------------------------------

CONFIG = """\
[tuilora]
base_type = "sd15"
[network]
network_dim = 4
{extra}
[dataset]
train_data_dir = "data"
[saving]
output_dir = "out"
output_name = "x"
"""


@pytest.mark.parametrize("depth", [DEEP, SHALLOW_BUT_DEEP])
@pytest.mark.parametrize(
    "where", ["network_args = {n}", "x = {n}", "network_args = [{{a = {n}}}]", "t = {{a = {n}}}"]
)
@pytest.mark.parametrize("command", ["train", "diagnose"])
def test_deeply_nested_toml_is_one_line(
    capsys: pytest.CaptureFixture[str], command: str, where: str, depth: int
) -> None:
    Path("deep.toml").write_text(
        CONFIG.format(extra=where.format(n=nested(depth))), encoding="utf-8"
    )
    args = ["train", "deep.toml"] if command == "train" else ["diagnose", "--config", "deep.toml"]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert_one_line_error(err, "deep.toml", "nested")
    assert not Path("out").exists()  # nothing written


@pytest.mark.parametrize("depth", [DEEP, SHALLOW_BUT_DEEP])
def test_advise_set_with_a_deeply_nested_value(
    capsys: pytest.CaptureFixture[str], depth: int
) -> None:
    code, _, err = run_cli(
        capsys,
        "advise",
        "--subject",
        "style",
        "--images",
        "20",
        "--vram",
        "24",
        "--set",
        f"network_args={nested(depth)}",
    )
    assert code == 2
    assert_one_line_error(err, "network_args")


def lora_file(path: Path, meta: dict[str, str], *, cut: int = 0) -> Path:
    """A small but complete LoRA-shaped safetensors file (``cut`` bytes removed at the end)."""
    header = json.dumps(
        {
            "__metadata__": meta,
            "lora_unet_x.lora_down.weight": {
                "dtype": "F32",
                "shape": [4, 8],
                "data_offsets": [0, 128],
            },
        }
    ).encode()
    data = struct.pack("<Q", len(header)) + header + b"\0" * 128
    path.write_bytes(data[: len(data) - cut])
    return path


GOOD_META = {
    "ss_network_module": "networks.lora",
    "ss_network_dim": "4",
    "ss_network_alpha": "1.0",
    "ss_learning_rate": "0.0001",
    "ss_num_epochs": "4",
    "ss_output_name": "aria",
}


@pytest.mark.parametrize(
    "hostile",
    [
        {"ss_tag_frequency": nested(DEEP)},
        {"ss_tag_frequency": json.dumps({"1_a": {"tag": "many"}})},
        {"ss_tag_frequency": json.dumps({"1_a": {"tag": [1, 2]}})},
        {"ss_dataset_dirs": json.dumps({"1_a": {"img_count": "x", "n_repeats": None}})},
        {"ss_dataset_dirs": "{" * DEEP},
        {"ss_network_args": nested(DEEP)},
        {"ss_resolution": "(" * DEEP},
    ],
    ids=["deep-tags", "tag-count-text", "tag-count-list", "dirs-junk", "dirs-open", "args", "res"],
)
def test_diagnose_lora_with_hostile_metadata_still_diagnoses(
    capsys: pytest.CaptureFixture[str], hostile: dict[str, str]
) -> None:
    lora_file(Path("odd.safetensors"), {**GOOD_META, **hostile})
    code, out, err = run_cli(capsys, "diagnose", "--lora", "odd.safetensors", "--format", "json")
    assert code == 0, err
    assert "Traceback" not in err
    json.loads(out)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (lambda: lora_file(Path("f"), GOOD_META, cut=64).read_bytes(), "does not fit"),
        (lambda: lora_file(Path("f"), GOOD_META).read_bytes()[:40], "past the end"),
        (lambda: b"", "shorter than a header"),
        (lambda: os.urandom(4096), "past the end"),
        (lambda: struct.pack("<Q", 10**15) + b"{}", "past the end"),
        (lambda: struct.pack("<Q", 2 * DEEP) + nested(DEEP).encode(), "not JSON"),
        (lambda: b"\x80\x04\x95pickle-ish", "past the end"),
    ],
    ids=["half-cut", "cut-header", "empty", "random", "lying-length", "deep-header", "pickle"],
)
def test_diagnose_lora_on_a_broken_file_is_one_line(
    capsys: pytest.CaptureFixture[str], content: object, reason: str
) -> None:
    data = content()  # type: ignore[operator]
    Path("broken.safetensors").write_bytes(data)
    code, _, err = run_cli(capsys, "diagnose", "--lora", "broken.safetensors")
    assert code == 2
    assert_one_line_error(err, "broken.safetensors", reason)


# -- advisor flags ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "NaN", "-1", "0", "abc", "0x10"])
def test_advise_vram_must_be_a_finite_positive_number(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, _, err = run_cli(
        capsys, "advise", "--subject", "style", "--images", "20", "--vram", value
    )
    assert code == 2
    assert_one_line_error(err, "--vram")


# -- damaged run folders: one bad run never breaks the others --------------------------

GOOD_EVENTS = [
    {"t": 1.0, "type": "phase", "elapsed_s": 0.0, "name": "starting", "done": 0,
     "total": None, "eta_s": None},
    {"t": 2.0, "type": "start", "elapsed_s": 1.0, "config": {}, "total_steps": 4, "epochs": 2,
     "steps_per_epoch": 2, "device": "cpu", "versions": {}, "resumed_from_step": 0},
    {"t": 3.0, "type": "step", "elapsed_s": 2.0, "step": 1, "epoch": 1, "loss": 0.5,
     "loss_ema": 0.5, "lr": {"unet": 1e-4}, "samples_per_s": 1.0, "vram_gb": None,
     "eta_s": 3.0},
    {"t": 4.0, "type": "epoch_end", "elapsed_s": 3.0, "epoch": 1, "step": 2, "loss_mean": 0.5,
     "snapshot": None},
    {"t": 5.0, "type": "end", "elapsed_s": 4.0, "status": "finished", "step": 4,
     "final": "x.safetensors", "message": ""},
]  # fmt: skip


def _mutated(field: str, value: object, types: tuple[str, ...] = ()) -> bytes:
    lines = []
    for event in GOOD_EVENTS:
        event = dict(event)
        if field in event and (not types or event["type"] in types):
            event[field] = value
        lines.append(json.dumps(event))
    return ("\n".join(lines) + "\n").encode()


DAMAGED_EVENTS: dict[str, bytes | None] = {
    "garbage-step": _mutated("step", "abc"),
    "list-step": _mutated("step", [1, 2]),
    "negative-step": _mutated("step", -5),
    "huge-step": _mutated("step", 10**30),
    "bool-step": _mutated("step", True),
    "text-loss": _mutated("loss", "NaN?"),
    "text-lr": _mutated("lr", "fast"),
    "text-time": _mutated("t", "yesterday"),
    "text-elapsed": _mutated("elapsed_s", "1h"),
    "text-total": _mutated("total_steps", "ten"),
    "config-text": _mutated("config", "oops"),
    "status-number": _mutated("status", 7),
    "final-number": _mutated("final", 123),
    "phase-junk": _mutated("done", {"a": 1}),
    "deep-line": b'{"type": "step", "x": ' + nested(DEEP).encode() + b"}\n",
    "binary": os.urandom(64 * 1024),
    "binary-no-newline": os.urandom(8 * 1024).replace(b"\n", b"x"),
    "nul-bytes": b"\0" * 10000,
    "not-utf8": b"\xff\xfe" * 100 + b"\n",
    "a-list": b"[1, 2, 3]\n",
    "directory": None,
}


def damaged_run(root: Path, name: str) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.toml").write_text(
        '[saving]\noutput_name = "x"\noutput_dir = "."\n', encoding="utf-8"
    )
    # As a real run: its trainer wrote a pid file (of a process long gone), so the run is
    # over and ``watch`` must say how it ended rather than wait for a start.
    (run / "pid").write_text("4194303", encoding="utf-8")
    content = DAMAGED_EVENTS[name]
    if content is None:
        (run / "events.jsonl").mkdir()
    else:
        (run / "events.jsonl").write_bytes(content)
    return run


@pytest.mark.parametrize("name", sorted(DAMAGED_EVENTS))
def test_a_damaged_run_neither_breaks_runs_nor_watch_nor_diagnose(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    root = Path("runs")
    run = damaged_run(root, name)
    good = root / "good"
    good.mkdir()
    (good / "events.jsonl").write_bytes(_mutated("nothing", None))

    code, out, err = run_cli(capsys, "runs", str(root), "--format", "json")
    assert code == 0 and "Traceback" not in err
    listed = {entry["name"] for entry in json.loads(out)}
    assert listed == {name, "good"}

    code, out, err = run_cli(capsys, "watch", "--plain", str(run))
    assert "Traceback" not in err
    assert code in (0, 1)
    if name not in ("huge-step",) and code == 1:
        # It did not find a good end: it says why rather than wait in silence.
        assert "warning:" in out or "end:" in out

    code, _, err = run_cli(capsys, "diagnose", str(run), "--format", "json")
    assert "Traceback" not in err
    assert code in (0, 2)
    if code == 2:
        assert_one_line_error(err, str(run))


@pytest.mark.parametrize(
    "pid", ["99999999999999999999", "-1", "0", "abc", "1e9", "", "\0\0", "4194305"]
)
def test_a_pid_file_that_is_not_a_pid(capsys: pytest.CaptureFixture[str], pid: str) -> None:
    run = Path("runs") / "r"
    run.mkdir(parents=True)
    unfinished = [json.dumps(event) for event in GOOD_EVENTS if event["type"] != "end"]
    (run / "events.jsonl").write_text("\n".join(unfinished) + "\n", encoding="utf-8")
    (run / "pid").write_text(pid, encoding="utf-8")
    code, out, err = run_cli(capsys, "runs", "runs", "--format", "json")
    assert code == 0 and json.loads(out)[0]["pid"] is None
    code, _, err = run_cli(capsys, "stop", str(run), "--wait", "1")
    assert code == 2
    assert_one_line_error(err, str(run), "not running")


@pytest.mark.parametrize("name", ["binary", "binary-no-newline", "garbage-step", "directory"])
def test_the_monitor_says_why_a_damaged_run_shows_nothing(name: str) -> None:
    from tuilora.screens.monitor_data import RunTail

    tail = RunTail(damaged_run(Path("runs"), name))
    assert tail.poll()
    warnings = [text for kind, text in tail.view.messages if kind == "warning"]
    assert len(warnings) == 1 and "events.jsonl" in warnings[0]
    tail.poll()  # said once, not at every poll
    assert len([1 for kind, _ in tail.view.messages if kind == "warning"]) == 1

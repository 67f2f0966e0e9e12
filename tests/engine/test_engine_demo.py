"""`tuilora demo` end to end, as the README's first command runs it (without a terminal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuilora.cli import main
from tuilora.runs.events import read_events


@pytest.mark.slow
def test_demo_trains_and_proves_the_lora(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert exited.value.code == 0, err
    assert "60 LoRA modules in the file, 60 injected" in err
    assert "0 loading warnings" in err
    run = tmp_path / "runs" / "demo"
    assert (run / "demo.safetensors").is_file()
    assert read_events(run / "events.jsonl")[-1]["status"] == "finished"
    config = (tmp_path / "demo.toml").read_text(encoding="utf-8")
    assert "Made by" in config or "tuilora demo" in config  # the advisor wrote it
    with pytest.raises(SystemExit) as again:
        main(["demo", "--out", str(tmp_path), "--no-progress"])
    assert again.value.code == 2  # an existing demo run is not overwritten without --force

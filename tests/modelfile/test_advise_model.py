"""``tuilora advise --model FILE`` reads the family from the file's header and advises for it,
without importing torch or diffusers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tuilora.cli import main

from .conftest import HeaderFile

ADVISE = ["advise", "--subject", "concept", "--images", "200", "--vram", "24", "--format", "json"]


def advise(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([*ADVISE, *args])
    out, err = capsys.readouterr()
    code = exit_info.value.code or 0
    return int(code), (json.loads(out) if code == 0 else {}), err


def warnings_by_id(result: dict) -> dict[str, dict]:
    return {w["id"]: w for w in result["warnings"]}


def test_an_sdxl_file_gets_sdxl_advice(
    header_file: HeaderFile, capsys: pytest.CaptureFixture[str]
) -> None:
    path = header_file("illustriousXL_v01.safetensors", "sdxl")
    code, result, _ = advise(["--model", str(path)], capsys)
    assert code == 0
    assert result["config"]["resolution"] == 1024  # rules/70-data.toml resolution-sdxl
    assert result["config"]["mixed_precision"] == "bf16"
    assert result["config"]["max_bucket_reso"] == 1536
    found = warnings_by_id(result)["model-family"]
    assert found["severity"] == "info" and "SDXL (Illustrious)" in found["message"]
    assert "model-base-mismatch" not in warnings_by_id(result)


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_sd_files_get_512(
    header_file: HeaderFile, capsys: pytest.CaptureFixture[str], family: str
) -> None:
    code, result, _ = advise(["--model", str(header_file("m.safetensors", family))], capsys)
    assert code == 0 and result["config"]["resolution"] == 512


def test_a_contradicting_base_is_a_warning_naming_both(
    header_file: HeaderFile, capsys: pytest.CaptureFixture[str]
) -> None:
    path = header_file("sd_xl_base_1.0.safetensors", "sdxl")
    code, result, _ = advise(["--model", str(path), "--base", "sd15"], capsys)
    assert code == 0 and result["config"]["resolution"] == 1024
    warning = warnings_by_id(result)["model-base-mismatch"]
    assert warning["severity"] == "warning"
    assert "--base sd15" in warning["message"] and "is SDXL" in warning["message"]
    # nai is an SD1.x model: no contradiction, and nai's own advice (clip_skip 2) stays
    code, result, _ = advise(
        ["--model", str(header_file("nai.safetensors", "sd1")), "--base", "nai"], capsys
    )
    assert "model-base-mismatch" not in warnings_by_id(result)
    assert result["config"]["clip_skip"] == 2


def test_a_model_path_not_on_this_machine_follows_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, _ = advise(
        ["--model", str(tmp_path / "remote.safetensors"), "--base", "sdxl"], capsys
    )
    assert code == 0 and result["config"]["resolution"] == 1024
    assert warnings_by_id(result)["model-not-found"]["severity"] == "info"


def test_a_file_that_is_no_model_exits_2_with_one_line(
    header_file: HeaderFile, capsys: pytest.CaptureFixture[str]
) -> None:
    path = header_file("lora.safetensors", {"lora_unet_a.lora_down.weight": (4, 320)})
    code, _, err = advise(["--model", str(path)], capsys)
    assert code == 2
    assert "a LoRA" in err and str(path) in err and "Traceback" not in err


_PROBE = """
import json, sys, time
start = time.perf_counter()
sys.argv = ["tuilora", *json.loads(sys.argv[1])]
from tuilora.cli import main
try:
    main()
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "diffusers", "transformers",
    "textual", "accelerate", "safetensors"})
sys.stderr.write("HEAVY=" + json.dumps(heavy) + "\\n")
"""


@pytest.mark.slow
def test_advise_with_a_model_imports_no_heavy_stack(header_file: HeaderFile) -> None:
    path = header_file("xl.safetensors", "sdxl")
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([*ADVISE, "--model", str(path)])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert '"resolution": 1024' in result.stdout
    marker = [line for line in result.stderr.splitlines() if line.startswith("HEAVY=")]
    assert marker and json.loads(marker[-1].removeprefix("HEAVY=")) == []

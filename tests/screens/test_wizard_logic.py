"""The wizard's headless parts: state -> advice, memory, field parsing, exports, launch."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest
from stub_models import header_only_model

from tuilora.advisor.answers import QUESTIONS
from tuilora.advisor.cli_advise import answers_from_options
from tuilora.errors import UserError
from tuilora.runs import statedir
from tuilora.screens.path_input import complete_path
from tuilora.wizard import actions, fields, memory, steps
from tuilora.wizard.state import WizardState


def character_state(**values: object) -> WizardState:
    state = WizardState(values={"subject": "character", "category": "C", **values})
    state.values["vram"] = 12.0
    state.vram_typed = True
    return state


def test_every_question_is_asked_on_exactly_one_step() -> None:
    assert {q.name for q in QUESTIONS} == set(steps.STEP_OF)
    assert set(steps.STEP_OF.values()) <= set(steps.STEPS)
    assert steps.steps_for("style") == tuple(s for s in steps.STEPS if s != "category")
    assert steps.next_step("subject", "character") == "category"
    assert steps.next_step("subject", "vehicle") == "details"
    assert steps.next_step("finish", "character") is None


def test_wizard_answers_equal_the_flags_answers() -> None:
    state = character_state(male=True, prior="some", images=40, goal="likeness")
    flags = answers_from_options(
        {
            "subject": "character",
            "category": "c",
            "male": True,
            "prior": "some",
            "images": "40",
            "goal": "likeness",
            "vram": "12",
        }
    )
    assert state.answers() == flags


def test_questions_of_another_subject_are_left_out() -> None:
    state = character_state(male=True, images=500)
    state.values["subject"] = "style"
    answers = state.answers()
    assert answers.category is None and answers.male is False


def test_advice_before_the_dataset_assumes_images_and_says_so() -> None:
    state = WizardState(values={"subject": "character"})
    assert state.advise().rec is None
    assert "category" in state.advise().note
    state.set("category", "D")
    advice = state.advise()
    assert advice.rec is not None
    assert "Assuming 40 images" in advice.note and "assuming 24 GB" in advice.note
    state.detected_vram = 8.0
    assert "24 GB" not in state.advise().note


def test_overrides_are_pins_and_errors_stay_errors() -> None:
    state = character_state(images=40)
    rec = state.recommendation({"train_batch_size": 4})
    assert rec.plan["steps_per_epoch"] == 10
    bad = state.recommendation({"network_alpha": 64.0})
    assert [w.id for w in bad.errors] == ["alpha-above-rank"]


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("unet_lr", "1e-4", 1e-4),
        ("unet_lr", "0.0001", 1e-4),
        ("network_dim", "16", 16),
        ("network_dim", "16.0", 16),
        ("flip_aug", "no", False),
        ("optimizer_args", "decouple=True betas=0.9,0.999", ["decouple=True", "betas=0.9,0.999"]),
        ("resolution", "512x768", "512,768"),
        ("lr_warmup_steps", "100", 100),
        ("lr_warmup_steps", "0.1", 0.1),
        ("scale_weight_norms", "", None),
        ("optimizer_type", "AdamW8bit", "AdamW8bit"),
    ],
)
def test_field_text_parses_by_the_fields_type(key: str, text: str, value: object) -> None:
    assert fields.parse(key, text) == value
    if value is not None:
        assert fields.parse(key, fields.show(value)) == value


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("network_dim", "16.5", "network_dim must be a whole number"),
        ("unet_lr", "fast", "unet_lr must be a number such as 1e-4"),
        ("flip_aug", "maybe", "flip_aug must be true or false"),
        ("unet_lr", "inf", "finite"),
        ("nonsense", "1", "not a config field"),
    ],
)
def test_field_text_errors_name_the_field(key: str, text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        fields.parse(key, text)


def test_memory_round_trip_and_bad_files(tmp_path: Path) -> None:
    target = tmp_path / "tuilora" / "last.json"
    state = character_state(images=40, male=True)
    state.model_path, state.output_name = "m.safetensors", "aria"
    state.overrides = {"noise_offset": 0.06, "optimizer_args": ["decouple=True", "d_coef=2"]}
    state.processes, state.sample_prompts, state.sample_every = 2, ["aria, smiling"], 3
    assert memory.save_last(state, target) == target
    loaded = memory.load_last(target)
    assert loaded is not None
    assert loaded.answers() == state.answers()
    assert (loaded.model_path, loaded.output_name) == ("m.safetensors", "aria")
    assert loaded.overrides == state.overrides  # review edits come back
    assert (loaded.processes, loaded.sample_prompts, loaded.sample_every) == (
        2,
        ["aria, smiling"],
        3,
    )
    data = json.loads(target.read_text(encoding="utf-8"))
    data["overrides"] = {"network_dim": "many", "no_such_field": 1, "noise_offset": 0.1}
    target.write_text(json.dumps(data), encoding="utf-8")
    reloaded = memory.load_last(target)
    assert reloaded is not None and reloaded.overrides == {"noise_offset": 0.1}  # one by one
    target.write_text("{not json", encoding="utf-8")
    assert memory.load_last(target) is None
    target.write_text(json.dumps({"answers": {"category": "Z", "images": 5}}), encoding="utf-8")
    partial = memory.load_last(target)
    assert partial is not None and partial.values == {"images": 5}  # the bad answer dropped


def test_memory_goes_to_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert memory.memory_file() == tmp_path / "tuilora" / memory.FILE_NAME


def test_advise_argv_reproduces_the_wizard(capsys: pytest.CaptureFixture[str]) -> None:
    from tuilora.cli import main

    state = character_state(images=40, quality="bad", asymmetric=True)
    state.model_path, state.output_name = "m.safetensors", "aria"
    state.overrides = {"network_dim": 16, "unet_lr": 2e-4}
    rec = state.recommendation()
    argv = actions.advise_argv(state)
    assert argv[:5] == ["advise", "--subject", "character", "--category", "C"]
    with pytest.raises(SystemExit):
        main([*argv, "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert data["config"] == rec.config


def test_save_export_refuses_to_overwrite(workdir: Path) -> None:
    state = character_state(images=40)
    path = actions.save_export(state, "kohya-toml", "out.toml")
    assert tomllib.loads(path.read_text())["network_dim"] == 32
    with pytest.raises(UserError, match="already exists"):
        actions.save_export(state, "kohya-toml", "out.toml")
    actions.save_export(state, "kohya-cmd", "out.toml", overwrite=True)
    assert path.read_text().startswith("#!/usr/bin/env bash\n# Made by: tuilora advise")


def test_the_saved_command_is_a_script_and_runs_its_words(workdir: Path) -> None:
    """kohya-cmd: a shebang, mode 0755 under the usual umask, and the advise command line."""
    state = character_state(images=40)
    state.processes = 2
    path = actions.save_export(state, "kohya-cmd", "lora.sh")
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert path.stat().st_mode & 0o111 == 0o111 & ~_umask()
    assert "--processes 2" in text.splitlines()[1]  # the header repeats the processes
    # the command, then (advisor's export) a comment naming what to add before training
    assert any(line.startswith("accelerate launch") for line in text.splitlines())


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_sample_prompts_are_written_beside_the_config(workdir: Path) -> None:
    from tuilora.runs.prompts import load_prompts
    from tuilora.wizard.samples import default_prompts

    state = character_state(images=40)
    state.output_name = "aria"
    state.sample_prompts = default_prompts("character", "aria, 1girl, wings", 512)
    (workdir / "cfg").mkdir()
    path = actions.save_export(state, "kohya-toml", "cfg/aria.sdscripts.toml")
    data = tomllib.loads(path.read_text())
    prompts = workdir / "cfg" / "aria.prompts.txt"
    assert data["sample_prompts"] == str(prompts)
    # sampled with every snapshot unless the user says otherwise
    assert data["sample_every_n_epochs"] == data["save_every_n_epochs"]
    loaded = load_prompts(prompts)  # the trainer's own reader
    assert len(loaded) == 4 and {p.seed for p in loaded} == {420}
    assert len({p.prompt for p in loaded}) == 4 and all("aria" in p.prompt for p in loaded)
    state.sample_prompts = ["aria --w big"]
    with pytest.raises(UserError, match="sample prompts"):
        actions.save_export(state, "kohya-toml", "other.toml")
    assert not (workdir / "other.toml").exists()


def test_prepare_run_checks_first_then_writes_the_wizard_config(
    workdir: Path, dataset: Path
) -> None:
    from tuilora.advisor.dataset_facts import dataset_facts

    state = character_state()
    state.dataset_path = str(dataset)
    state.dataset = dataset_facts(str(dataset))
    with pytest.raises(UserError, match="base model path"):
        actions.prepare_run(state)
    state.model_path, state.output_name = "model.safetensors", "aria"
    with pytest.raises(UserError, match="model.safetensors: no such file"):
        actions.prepare_run(state)  # train's own checks, before anything is left behind
    assert not (workdir / "runs").exists()
    header_only_model(workdir / "model.safetensors")
    prepared = actions.prepare_run(state)
    assert prepared.config == workdir / "runs" / "aria" / actions.WIZARD_CONFIG
    data = tomllib.loads(prepared.config.read_text())
    assert data["saving"]["output_dir"] == str(workdir / "runs" / "aria")
    assert data["dataset"]["train_data_dir"] == str(workdir / "data")
    assert prepared.command[-3:] == ("train", str(prepared.config), "--detach")
    assert actions.prepare_run(state).config == prepared.config  # no run yet: same again


def test_a_name_that_holds_a_run_offers_resume_start_over_or_a_new_name(
    workdir: Path, dataset: Path
) -> None:
    from tuilora.advisor.dataset_facts import dataset_facts

    state = character_state()
    state.dataset_path, state.dataset = str(dataset), dataset_facts(str(dataset))
    state.model_path, state.output_name = "model.safetensors", "aria"
    header_only_model(workdir / "model.safetensors")
    run = workdir / "runs" / "aria"
    run.mkdir(parents=True)
    events = [
        {"t": 1.0, "type": "start", "total_steps": 40},
        {"t": 2.0, "type": "step", "step": 12, "epoch": 1, "loss": 0.5},
        {"t": 3.0, "type": "end", "status": "stopped", "step": 12},
    ]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    with pytest.raises(actions.RunExists) as exists:
        actions.prepare_run(state)
    assert not exists.value.old.can_resume  # no state saved: resume is not offered
    assert "--resume" not in str(exists.value)
    state_folder = run / "state" / "00000012"
    state_folder.mkdir(parents=True)
    for name in statedir.STATE_FILES:
        (state_folder / name).write_text('{"step": 12}', encoding="utf-8")
    with pytest.raises(actions.RunExists) as exists:
        actions.prepare_run(state)
    assert exists.value.old.can_resume and exists.value.old.status.resumable_step == 12
    assert actions.resume_command(run)[-4:] == ("train", "--resume", str(run), "--detach")
    over = actions.prepare_run(state, start_over=True)
    assert over.command[-2:] == ("--detach", "--force")
    state.output_name = "aria-2"
    assert actions.prepare_run(state).run.root == workdir / "runs" / "aria-2"
    state.output_name, state.processes = "aria-3", 3
    assert actions.prepare_run(state).command[-2:] == ("--processes", "3")


def test_launch_reports_the_last_stderr_line() -> None:
    def failing(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 2, "", "noise\ntuilora: error: no model\n")

    with pytest.raises(UserError, match="tuilora: error: no model"):
        actions.launch(["tuilora"], runner=failing)


def test_path_completion(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data.txt").write_text("")
    (tmp_path / ".hidden").mkdir()
    assert complete_path(f"{tmp_path}/da") == f"{tmp_path}/data/"
    assert complete_path(f"{tmp_path}/data.", dirs_only=False) == f"{tmp_path}/data.txt"
    assert complete_path(f"{tmp_path}/zz") is None
    assert complete_path(f"{tmp_path}/") == f"{tmp_path}/data/"  # hidden names only on "."


def test_facts_from_report_match_the_cli_adapter(workdir: Path, dataset: Path) -> None:
    from tuilora.advisor.dataset_facts import dataset_facts, facts_from_report
    from tuilora.dataset.scan import scan_dataset
    from tuilora.screens.dataset_view import summary

    report = scan_dataset(str(dataset), near_duplicates=False)  # as dataset_facts scans
    assert facts_from_report(report) == dataset_facts(str(dataset))
    text = summary(report).plain
    assert "6 images, 60 with repeats" in text and "Top tags" in text

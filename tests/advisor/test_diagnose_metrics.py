"""RunMetrics from the recorded events fixtures (tests/fixtures/events, DESIGN §7 format)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tuilora.advisor.diagnose_metrics import RunMetrics, metrics_from_events, trend_of
from tuilora.runs.events import read_events

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"


def metrics(name: str) -> RunMetrics:
    return metrics_from_events(read_events(FIXTURES / f"{name}.jsonl"))


def test_fixtures_are_what_the_generator_makes() -> None:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in module.SCENARIOS:
        on_disk = (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8")
        assert on_disk == module.render(name), f"{name}.jsonl is stale: rerun make_fixtures.py"


@pytest.mark.parametrize(
    ("name", "trend", "flat_epoch", "lrd_path", "end"),
    [
        ("healthy", "falling", None, "none", "finished"),
        ("plateau", "flat", 5, "none", "finished"),
        ("rising", "rising", 4, "none", "finished"),
        ("prodigy-healthy", "falling", None, "normal", "finished"),
        ("prodigy-collapse", "flat", 1, "stuck", "finished"),
        ("prodigy-explode", "flat", 1, "exploding", "finished"),
        ("torn", "flat", 4, "none", None),
    ],
)
def test_curves_read_as_expected(
    name: str, trend: str, flat_epoch: int | None, lrd_path: str, end: str | None
) -> None:
    m = metrics(name)
    assert m.trend == trend
    assert m.flat_epoch == flat_epoch
    assert m.lrd_path == lrd_path
    assert m.end_status == end
    assert m.nan_step is None


def test_divergence_is_found_with_the_last_good_epoch() -> None:
    m = metrics("nan")
    assert m.nan_step == 157
    assert m.end_status == "diverged"
    assert m.epochs_done == 2  # the third epoch never ended
    assert m.facts()["diverged"] is True
    assert m.level is not None and not m.too_early


def test_spikes_are_counted_in_the_plateau_run_only() -> None:
    assert metrics("plateau").spikes >= 3
    assert metrics("healthy").spikes == 0
    assert metrics("rising").spikes == 0


def test_torn_last_line_is_skipped() -> None:
    m = metrics("torn")
    assert m.epochs_done == 6
    assert m.steps == 360
    assert m.epochs_planned == 10
    assert set(m.snapshots) == {1, 2, 3, 4, 5, 6}


def test_level_and_band_facts() -> None:
    facts = metrics("healthy").facts()
    assert 0.05 < facts["loss_level"] < 0.15
    assert facts["run_epochs_done"] == 10


def test_trend_of_needs_three_epochs_and_a_real_change() -> None:
    assert trend_of([0.1, 0.09]) == ("unknown", 0.0)
    assert trend_of([0.1, 0.1, 0.1, 0.1])[0] == "flat"
    assert trend_of([0.12, 0.11, 0.10, 0.09])[0] == "falling"
    assert trend_of([0.09, 0.10, 0.11, 0.12])[0] == "rising"
    assert trend_of([0.100, 0.1001, 0.1002, 0.1003])[0] == "flat"  # exact but tiny


def test_no_events_gives_empty_metrics() -> None:
    m = metrics_from_events([])
    assert m.steps == 0 and m.trend == "unknown" and m.lrd_path == "none"
    assert m.facts()["has_events"] is False

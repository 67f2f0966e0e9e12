"""Time from a new process to the wizard's first painted screen, as a ratio to importing
``textual.app`` (DESIGN §10, issue 7), in one run.

Each child measures from its first line: one imports ``textual.app``; the other imports the
wizard, runs it headless at 80x24 and stops on Textual's ``Ready`` event (sent once the
first frame is displayed). They alternate, and the medians are compared. The wizard child
also reports whether torch (or diffusers/transformers) was imported: it must not be.
Goal: first paint <= 0.5 s here.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

ROUNDS = 9
GOAL_S = 0.5

IMPORT_TEXTUAL = """
import time
start = time.perf_counter()
import textual.app
print(time.perf_counter() - start)
"""

FIRST_PAINT = """
import sys, time
start = time.perf_counter()
from tuilora.screens.app import WizardApp

class Timed(WizardApp):
    painted = 0.0

    def on_ready(self) -> None:
        Timed.painted = time.perf_counter() - start
        self.exit(0)

Timed(detect_vram=lambda: None).run(headless=True, size=(80, 24))
heavy = [m for m in ("torch", "diffusers", "transformers", "accelerate") if m in sys.modules]
print(Timed.painted, ",".join(heavy) or "-")
"""


def child(code: str, env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout.split()


def main() -> None:
    with tempfile.TemporaryDirectory() as config:
        env = {**os.environ, "XDG_CONFIG_HOME": config}  # no remembered answers
        child(FIRST_PAINT, env)  # warm the file cache and .pyc files
        paints, imports, heavy = [], [], set()
        for _ in range(ROUNDS):
            imports.append(float(child(IMPORT_TEXTUAL, env)[0]))
            seconds, modules = child(FIRST_PAINT, env)
            paints.append(float(seconds))
            heavy.update(m for m in modules.split(",") if m != "-")
    paint, base = statistics.median(paints), statistics.median(imports)
    verdict = "ok" if paint <= GOAL_S and not heavy else "OVER GOAL"
    print(
        f"wizard first paint: {paint * 1000:.0f} ms, import textual.app: {base * 1000:.0f} ms,"
        f" ratio {paint / base:.1f}x (goal <= {GOAL_S * 1000:.0f} ms; torch imported:"
        f" {'yes: ' + ', '.join(sorted(heavy)) if heavy else 'no'}) {verdict}"
    )


if __name__ == "__main__":
    main()

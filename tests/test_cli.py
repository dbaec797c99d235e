"""The `labkit sweep` command: a sweep by one command, errors as one line naming the fix, and Ctrl-C finishing the
rows in flight and leaving a folder the same command resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from labkit.cli import main

SWEEP = ["sweep", "toy", "seed=0-39", "cfg=3", "--set", "steps=12", "--set", "sampler=Euler", "--prompt",
         "a green circle on a gray background", "--batch", "1", "--workers", "1"]


def test_one_command_runs_a_sweep_and_names_its_page(tmp_path, capsys):
    assert main(["sweep", "toy", "cfg=1, 4", "seed=0-1", "--set", "steps=3", "--prompt", "a red star",
                 "--score", "judge", "--workers", "0", "--out", str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    assert "4 runs, 0 failed" in printed and str(tmp_path / "s" / "index.html") in printed
    rows = json.loads((tmp_path / "s" / "results.json").read_text())
    assert [(r["cfg"], r["seed"], r["steps"] if "steps" in r else 3) for r in rows] == [
        (1, 0, 3), (1, 1, 3), (4, 0, 3), (4, 1, 3)]
    assert all(0 <= r["adherence"] <= 1 for r in rows)


def test_bad_input_is_one_line_naming_the_fix(tmp_path, capsys):
    assert main(["sweep", "toy", "cfgg=1, 4", "--out", str(tmp_path / "s")]) == 2
    assert "Did you mean 'cfg'" in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert main(["sweep", "toy", "cfg 4", "--out", str(tmp_path / "s")]) == 2
    assert "write NAME=VALUES" in capsys.readouterr().err


def wait_for_rows(path, at_least: int, timeout: float = 120) -> list:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            rows = json.loads(path.read_text())
            if len(rows) >= at_least:
                return rows
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"no {at_least} rows in {path} after {timeout} s")


@pytest.mark.slow
def test_ctrl_c_finishes_rows_in_flight_and_the_same_command_resumes(tmp_path):
    out = tmp_path / "s"
    command = [sys.executable, "-m", "labkit", *SWEEP, "--out", str(out)]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    # a shell that started the test run in the background (`bin/test &`) hands its children SIGINT ignored, and
    # Python keeps it so: the sweep gets Ctrl-C's default handling, as in a terminal
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_rows(out / "results.json", 1)
    process.send_signal(signal.SIGINT)  # as Ctrl-C in a terminal
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "run the same sweep again" in stdout
    saved = json.loads((out / "results.json").read_text())
    assert 1 <= len(saved) < 40 and all(r["status"] == "ok" for r in saved)
    assert all((out / r["images"][0]).is_file() for r in saved) and (out / "index.html").is_file()
    kept = {r["run"]: (out / r["images"][0]).stat().st_mtime_ns for r in saved}
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    rows = json.loads((out / "results.json").read_text())
    assert [r["seed"] for r in rows] == list(range(40)) and all(r["status"] == "ok" for r in rows)
    assert {run: (out / rows[run]["images"][0]).stat().st_mtime_ns for run in kept} == kept  # not redone

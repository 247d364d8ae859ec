"""Stage commands replace their --out folder whole, or not at all (issue 21 section 2), through the CLI.

The fast stage is a BVH-to-BVH retarget (no body model); demo and capture synth use tiny sizes or stub stages.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import doppel.pipeline.demo as demo_pipeline
from core.stage_folders import STAGE_MARKER
from doppel.cli import INTERRUPTED_LINE
from doppel.report import Section
from tests.cli_runner import run_cli

REPO = Path(__file__).resolve().parents[2]


def tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.parent.iterdir() if p.name.startswith(f".{d.name}."))


@pytest.fixture()
def retargeted(clips, tmp_path, capsys):
    clip, target = clips
    out = tmp_path / "a"
    code, _, err = run_cli(capsys, "retarget", clip, "--rig", target, "--out", out, "--preview-size", "64")
    assert code == 0, err
    return out


def fake_stage_folder(d: Path, stage: str) -> Path:
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"schema_version": 1, "stage": stage}))
    (d / "payload.npz").write_bytes(b"precious")
    return d


@pytest.mark.parametrize(("stage", "argv"), [
    ("rig", ["retarget", "{clip}", "--rig", "{target}", "--out", "{out}"]),
    ("rig", ["capture", "ingest", "{session}", "--out", "{out}"]),
    ("retarget", ["rig", "--out", "{out}"]),
    ("capture_ingest", ["fit", "{session}", "--landmarks", "{landmarks}", "--out", "{out}"]),
    ("fit", ["capture", "synth", "--out", "{out}", "--size", "64", "--cameras", "2"]),
    ("retarget", ["demo", "--quick", "--out", "{out}"]),
])
def test_out_holding_another_stage_is_refused(clips, tmp_path, capsys, stage, argv):
    out = fake_stage_folder(tmp_path / "r2", stage)
    before = tree(out)
    names = {"clip": clips[0], "target": clips[1], "out": out, "session": tmp_path / "S", "landmarks": tmp_path / "L"}
    code, _, err = run_cli(capsys, *[a.format(**names) for a in argv])
    assert code == 1, err
    assert err.count("\n") == 1 and "--force" in err and str(out) in err and "output" in err
    assert tree(out) == before and leftovers(out) == []


def test_force_replaces_another_stage_folder_whole(clips, tmp_path, capsys):
    out = fake_stage_folder(tmp_path / "r2", "rig")
    code, _, err = run_cli(capsys, "retarget", clips[0], "--rig", clips[1], "--out", out, "--preview-size", "64",
                           "--force")
    assert code == 0, err
    files = set(tree(out))
    assert "payload.npz" not in files and {"animation.npz", "manifest.json", STAGE_MARKER} <= files
    assert json.loads((out / "manifest.json").read_text())["stage"] == "retarget"


def test_failed_rerun_keeps_the_old_result_whole(clips, retargeted, capsys, monkeypatch):
    import mocap_retarget.export as export

    before = tree(retargeted)
    real = export.write_outputs

    def fails_after_the_animation(out, *args, **kwargs):   # as `--preview-size 0` did: animation.npz written first
        (Path(out) / "animation.npz").write_bytes(b"new, half")
        raise ValueError("--preview-size must be >= 16 pixels, got 0")

    monkeypatch.setattr(export, "write_outputs", fails_after_the_animation)
    code, _, err = run_cli(capsys, "retarget", clips[0], "--rig", clips[1], "--out", retargeted)
    assert code == 1 and "preview-size" in err
    assert tree(retargeted) == before and leftovers(retargeted) == []
    monkeypatch.setattr(export, "write_outputs", real)
    code, _, err = run_cli(capsys, "retarget", clips[0], "--rig", clips[1], "--out", retargeted, "--preview-size",
                           "64", "--no-cleanup")
    assert code == 0, err
    assert json.loads((retargeted / "manifest.json").read_text())["params"]["cleanup"] is False


_SLOW_RERUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import mocap_retarget.export as export
    from doppel.cli import main

    def slow(out, *args, **kwargs):
        (Path(out) / "animation.npz").write_bytes(b"new, half")
        Path(sys.argv[1]).write_text("ready")
        time.sleep(120)

    export.write_outputs = slow
    main(sys.argv[2:])
""")


def from_a_terminal() -> None:
    """A child started as from an interactive terminal: SIGINT and SIGHUP at their defaults, whatever this test run
    inherited (a run under `nohup`, or in the background of a script, ignores them, and so would its children)."""
    for s in (signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_killed_or_interrupted_rerun_keeps_the_old_result(clips, retargeted, tmp_path, capsys, sig):
    """SIGHUP: the terminal closed (an ssh session dropped) killed the run without its cleanup."""
    before = tree(retargeted)
    ready = tmp_path / "ready"
    argv = ["retarget", str(clips[0]), "--rig", str(clips[1]), "--out", str(retargeted)]
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_RERUN, str(ready), *argv], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                            preexec_fn=from_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.stderr.read() if proc.poll() is not None else "never got ready"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert tree(retargeted) == before
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL and len(leftovers(retargeted)) == 1   # cleaned by the next run
    else:
        assert proc.returncode == 130 and err.strip() == INTERRUPTED_LINE and "Traceback" not in err
        assert leftovers(retargeted) == []
    code, _, err = run_cli(capsys, "retarget", clips[0], "--rig", clips[1], "--out", retargeted, "--preview-size", "64")
    assert code == 0, err
    assert leftovers(retargeted) == []


def test_a_run_started_under_nohup_outlives_its_terminal(clips, retargeted, tmp_path):
    """`nohup doppel ...` ignores SIGHUP, and the run must go on ignoring it (the CLI's handler must not take it)."""
    ready = tmp_path / "ready"
    argv = ["retarget", str(clips[0]), "--rig", str(clips[1]), "--out", str(retargeted)]
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_RERUN, str(ready), *argv], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.stderr.read() if proc.poll() is not None else "never got ready"
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None, "the run died of SIGHUP under nohup"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and err.strip() == INTERRUPTED_LINE
    finally:
        proc.kill()


def test_synth_one_frame_over_two_leaves_a_valid_session(tmp_path, capsys):
    from capture.session import load_session

    out = tmp_path / "syn"
    code, _, err = run_cli(capsys, "capture", "synth", "--out", out, "--size", "64", "--cameras", "2", "--frames", "2")
    assert code == 0, err
    assert sorted(p.name for p in (out / "session" / "images").iterdir()) == ["000", "001"]
    code, text, err = run_cli(capsys, "capture", "synth", "--out", out, "--size", "64", "--cameras", "2")
    assert code == 0, err
    assert "estimated" in text
    assert sorted(p.name for p in (out / "session" / "images").iterdir()) == ["ring00.png", "ring01.png"]
    assert not (out / "ground_truth" / "frames").exists()
    assert len(load_session(out / "session").frames) == 1
    assert json.loads((out / "ground_truth" / "params.json").read_text())["frames"] == 1


def _stub_stages(seed_files: dict):
    def actor(ctx):
        d = ctx.out / "actor"
        d.mkdir()
        (d / "seed.txt").write_text(str(ctx.seed))
        (d / "manifest.json").write_text("{}")
        return Section("actor", text=f"seed {ctx.seed}")

    def render(ctx):
        if ctx.seed == 1:
            raise KeyboardInterrupt   # Ctrl-C in the middle of the demo
        (ctx.out / "render").mkdir()
        (ctx.out / "render" / "seed.txt").write_text(str(ctx.seed))
        return Section("render")

    return [("actor", actor), ("render", render)]


def test_ctrl_c_during_demo_keeps_the_old_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo_pipeline, "STAGES", _stub_stages({}))
    out = tmp_path / "demo"
    code, _, err = run_cli(capsys, "demo", "--out", out, "--seed", "0")
    assert code == 0, err
    before = tree(out)
    assert "seed 0" in (out / "report.html").read_text()
    code, _, err = run_cli(capsys, "demo", "--out", out, "--seed", "1")
    assert code == 130 and INTERRUPTED_LINE in err
    assert tree(out) == before and leftovers(out) == []


def test_demo_over_an_old_demo_folder_without_marker(tmp_path, capsys, monkeypatch):
    """Demo folders written before the stage marker existed are recognised by their layout."""
    monkeypatch.setattr(demo_pipeline, "STAGES", _stub_stages({}))
    out = tmp_path / "demo"
    assert run_cli(capsys, "demo", "--out", out)[0] == 0
    (out / STAGE_MARKER).unlink()
    shutil.rmtree(out / "render")
    assert run_cli(capsys, "demo", "--out", out)[0] == 0
    assert (out / "render" / "seed.txt").is_file()

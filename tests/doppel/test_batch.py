"""`doppel batch`: plan validation (line numbers), DAG expansion and its errors, and real batches on one local Ray
session (a rig, retargets of tiny BVH clips and an export in a workspace; resume; a worker killed mid-task; a
consent revoked mid-batch)."""

from __future__ import annotations

import datetime as dt
import os
import signal
from pathlib import Path

import pytest

from assets.actors import add_actor
from assets.audit import entries, verify
from assets.consent import grant, revoke
from assets.lineage import list_assets, parents_of
from assets.workspace import Workspace
from doppel.batch.dag import build_dag
from doppel.batch.execute import BatchConfig, BatchError, run_batch
from doppel.batch.plan import PlanError, load_plan
from doppel.batch.report import write_html_report
from doppel.batch.stages import (
    STAGES,
    InputField,
    JobOptions,
    StageSpec,
    _retarget_call,
    _retarget_gate,
    call_command,
    register_stage,
)
from doppel.batch.worker import current_record
from mocap_retarget.bvh import write_bvh
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk
from tests.cli_runner import run_cli


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _clips(folder: Path, names, seconds=0.3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, n in enumerate(names):
        walk = synthetic_walk(WalkSpec(seconds=seconds, fps=30, turn_deg_per_s=5.0 * i), names=SCHEMES["mixamo"],
                              rest="A")
        write_bvh(folder / f"{n}.bvh", walk, units="cm")
        out.append(folder / f"{n}.bvh")
    return out


# --- plan validation: one clear error naming the line and field -------------------------------------------------
@pytest.mark.parametrize("body, line, words", [
    ("jobs:\n  - {stage: retarget, clips: a.bvh, rig: r, out: o}\n  - stage: teleport\n    out: x\n", 3,
     ["jobs[1].stage", "unknown stage 'teleport'", "retarget"]),
    ("jobs:\n  - stage: retarget\n    clips: a.bvh\n    rig: r\n    out: o\n    colour: red\n", 6,
     ["jobs[0].colour", "unknown field"]),
    ("jobs:\n  - stage: retarget\n    clips: a.bvh\n    rig: r\n    out: o\n    preview_size: huge\n", 6,
     ["jobs[0].preview_size"]),
    ("production: X\njobs:\n  - stage: export\n    rig: r\n    formats: [fbx, obj]\n    out: o\n", 5,
     ["jobs[0].formats[1]"]),
    ("jobs:\n  - stage: retarget\n    rig: r\n    out: o\n", 2, ["jobs[0].clips", "field required"]),
    ("workspace: w\nextra_top: 1\njobs: []\n", 2, ["extra_top", "unknown field"]),
    ("jobs:\n  - {stage: retarget,\n", 3, ["not valid YAML"]),
])
def test_plan_errors_name_line_and_field(tmp_path, body, line, words):
    plan = _write(tmp_path / "plan.yaml", body)
    with pytest.raises(PlanError) as e:
        load_plan(plan)
    msg = str(e.value)
    assert f"line {line}:" in msg and str(plan) in msg, msg
    for w in words:
        assert w in msg, msg


def test_dag_expands_globs_formats_and_dependencies(tmp_path):
    _clips(tmp_path / "mocap", ["run", "jump", "fall"])
    (tmp_path / "rigs" / "a").mkdir(parents=True)
    plan = _write(tmp_path / "plan.yaml", """
jobs:
  - {stage: export, anim: "anims/*", rig: rigs/a, formats: [fbx, glb, abc], out: "exports/{anim}.{format}"}
  - {stage: retarget, clips: "mocap/*.bvh", rig: rigs/a, out: "anims/{clip}"}
""")
    dag = build_dag(load_plan(plan))
    ids = list(dag.tasks)
    assert len(ids) == 3 + 3 * 3
    assert dag.tasks["export:exports/run.abc"].values["format"] == "abc"
    # the retargets come first although their job is second: the export job reads what they write
    assert all(i.startswith("retarget:") for i in ids[:3])
    exp = dag.tasks["export:exports/jump.fbx"]
    assert exp.deps == ("retarget:anims/jump",)
    assert exp.values["format"] == "fbx" and exp.values["anim"] == str(tmp_path / "anims" / "jump")
    assert dag.tasks["retarget:anims/run"].values["clips"] == str(tmp_path / "mocap" / "run.bvh")
    assert any("exports/fall.glb  (after: retarget:anims/fall)" in x for x in dag.describe())
    # a file inside another task's output folder: that task is its producer
    plan = _write(tmp_path / "plan2.yaml", """jobs:
  - {stage: retarget, clips: mocap/jump.bvh, rig: anims/run/retargeted.bvh, out: anims/jump}
  - {stage: retarget, clips: mocap/run.bvh, rig: rigs/a, out: anims/run}
""")
    assert build_dag(load_plan(plan)).tasks["retarget:anims/jump"].deps == ("retarget:anims/run",)


def test_templated_inputs_follow_the_session_through_ingest_fit_and_rig(tmp_path):
    for take in ("take1", "take2"):
        (tmp_path / "captures" / take).mkdir(parents=True)
    plan = _write(tmp_path / "plan.yaml", """jobs:
  - {stage: fit, session: "captures/take*", landmarks: "ingest/{session}", out: "fits/{session}"}
  - {stage: capture ingest, session: "captures/take*", out: "ingest/{session}"}
  - {stage: rig, fit: "fits/*", out: "rigs/{fit}"}
""")
    dag = build_dag(load_plan(plan))
    assert dag.tasks["fit:fits/take2"].deps == ("capture ingest:ingest/take2",)
    assert dag.tasks["fit:fits/take2"].values["landmarks"] == str(tmp_path / "ingest" / "take2")
    assert dag.tasks["rig:rigs/take1"].deps == ("fit:fits/take1",)
    assert list(dag.tasks)[:2] == ["capture ingest:ingest/take1", "capture ingest:ingest/take2"]


@pytest.mark.parametrize("jobs, words", [
    ('  - {stage: retarget, clips: "mocap/*.fbx", rig: r, out: "a/{clip}"}\n', ["line 2", "clips", "matches nothing"]),
    ('  - {stage: retarget, clips: "mocap/*.bvh", rig: nowhere, out: "a/{clip}"}\n', ["line 2", "rig", "not found"]),
    ('  - {stage: retarget, clips: "mocap/*.bvh", rig: r, out: "a/one"}\n', ["line 2", "out", "same path"]),
    ('  - {stage: retarget, clips: "mocap/*.bvh", rig: r, out: "a/{take}"}\n', ["out", "unknown placeholder {take}",
                                                                             "{clip}"]),
    ('  - {stage: retarget, clips: "mocap/*.bvh", rig: r, out: "a/*/{clip}"}\n', ["out", "cannot hold"]),
    ('  - {stage: retarget, clips: "mocap/a.bvh", rig: r, out: "x/y"}\n'
     '  - {stage: retarget, clips: "mocap/b.bvh", rig: r, out: "x/y/z"}\n', ["one inside the other"]),
    ('  - {stage: retarget, clips: "mocap/a.bvh", rig: r, out: "x/y/z"}\n'
     '  - {stage: retarget, clips: "mocap/b.bvh", rig: r, out: "x/y"}\n', ["one inside the other", "x/y/z"]),
    ('  - {stage: export, rig: "x/*", anim: "y/a", formats: [glb], out: "y/{rig}"}\n'
     '  - {stage: export, rig: "y/*", formats: [glb], out: "x/{rig}"}\n', ["cycle between jobs", "jobs[0]", "jobs[1]"]),
])
def test_dag_errors_before_anything_runs(tmp_path, jobs, words):
    _clips(tmp_path / "mocap", ["a", "b"])
    (tmp_path / "r").mkdir()
    plan = _write(tmp_path / "plan.yaml", "jobs:\n" + jobs)
    with pytest.raises(PlanError) as e:
        build_dag(load_plan(plan))
    for w in words:
        assert w in str(e.value), str(e.value)


def test_a_plan_of_thousands_of_tasks_is_checked_in_seconds(tmp_path):
    """A mocap library of 1500 clips, each retargeted and exported in two formats (4501 tasks): checking that no two
    tasks write one path compared every pair (a dry run of 8001 tasks took 381 s)."""
    import time

    (tmp_path / "mocap").mkdir()
    for k in range(1500):
        (tmp_path / "mocap" / f"clip{k:04d}.bvh").write_text("HIERARCHY\n")    # only globbed while planning
    plan = _write(tmp_path / "plan.yaml", """jobs:
  - {stage: rig, out: rigs/base}
  - {stage: retarget, clips: "mocap/*.bvh", rig: rigs/base, out: "anims/{clip}"}
  - {stage: export, anim: "anims/*", rig: rigs/base, formats: [glb, usdz], out: "exports/{anim}.{format}"}
""")
    t0 = time.perf_counter()
    dag = build_dag(load_plan(plan))
    assert len(dag.tasks) == 4501
    assert dag.tasks["export:exports/clip1499.usdz"].deps == ("retarget:anims/clip1499", "rig:rigs/base")
    assert time.perf_counter() - t0 < 15.0


class ShotJob(JobOptions):
    model: str
    frames: str
    chunk_size: int = 24


def test_a_new_stage_plugs_in_with_one_entry_and_frame_ranges_split_into_chunks(tmp_path):
    (tmp_path / "models" / "jane").mkdir(parents=True)
    register_stage(StageSpec("render shot (test)", ShotJob, "render", "builtins:print",
                             (InputField("model", "model"),), dict, lambda v: None, gpu=True, chunk="frames"))
    try:
        plan = _write(tmp_path / "plan.yaml", "jobs:\n  - {stage: render shot (test), model: models/jane, "
                      "frames: '1:50', chunk_size: 20, out: renders/sh010}\n")
        dag = build_dag(load_plan(plan))
    finally:
        del STAGES["render shot (test)"]
    assert [t.values["frames"] for t in dag.tasks.values()] == ["1:20", "21:40", "41:50"]
    assert list(dag.tasks)[-1] == "render shot (test):renders/sh010/chunk_000041_000050"


def test_unreachable_address_is_one_error_before_anything_runs(tmp_path):
    import socket

    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _clips(tmp_path / "mocap", ["a"])
    plan = _write(tmp_path / "plan.yaml", 'jobs:\n  - {stage: retarget, clips: "mocap/*.bvh", rig: mocap/a.bvh, '
                  'out: "anims/{clip}"}\n')
    dag = build_dag(load_plan(plan))
    with pytest.raises(BatchError, match=f"127.0.0.1:{port}: cannot reach"):
        run_batch(dag, BatchConfig(address=f"127.0.0.1:{port}"))
    assert not (tmp_path / "anims").exists()


def test_a_killed_exports_temporary_file_is_removed_once_the_output_is_committed(tmp_path):
    """Whatever host the killed attempt ran on (its process cannot be told dead from here)."""
    from doppel.batch.worker import remove_litter

    out = _write(tmp_path / "walk.fbx", "fbx")
    litter = _write(tmp_path / ".walk.fbx.tmp-otherhost-4242-1796503428664340528_ab12cd.fbx", "half")
    keep = [_write(tmp_path / ".walk.fbx.tmp-otherhost-4242-1796503428664340528_ab12cd.fbx.keep", ""),
            _write(tmp_path / ".walky.fbx.tmp-otherhost-4242-1796503428664340528_ab12cd.fbx", "")]
    assert remove_litter(out) == [Path(litter)]
    assert not Path(litter).exists() and all(k.exists() for k in keep) and out.exists()


def test_ctrl_c_while_ray_waits_is_an_interruption_that_says_how_to_resume(tmp_path, capsys, monkeypatch):
    """Ctrl-C lands inside Ray's native wait, which wraps the interruption in a SystemError: the CLI said
    "Error (internal): SystemError ... returned a result with an exception set" (exit 2). Now the interrupted line
    (exit 130) with how to resume the plan."""
    import doppel.batch.execute as execute
    from doppel.cli import Interrupted

    def interrupted_in_native_code(dag, cfg, progress=None):
        try:
            raise Interrupted(2)
        except Interrupted as e:
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from e

    monkeypatch.setattr(execute, "run_batch", interrupted_in_native_code)
    _clips(tmp_path / "mocap", ["good"])
    write_bvh(tmp_path / "target.bvh", synthetic_walk(WalkSpec(seconds=0.1, fps=30)), units="cm")
    plan = _write(tmp_path / "plan.yaml", 'jobs:\n  - {stage: retarget, clips: "mocap/*.bvh", rig: target.bvh, '
                  'out: "anims/{clip}"}\n')
    code, out, err = run_cli(capsys, "batch", plan)
    said = " ".join((out + err).split())
    assert code == 130 and "internal" not in said and "SystemError" not in said
    assert said.startswith("interrupted:") and f"doppel batch {plan} --resume` skips them" in said


def test_call_command_fills_typer_defaults():
    def cmd(a: int, b: str = __import__("typer").Option("x", "--b")) -> tuple:
        return a, b

    assert call_command(cmd, a=1) == (1, "x")
    with pytest.raises(TypeError, match="'a' has no default"):
        call_command(cmd)


# --- real batches on one local Ray session --------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_session():
    import ray

    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(k, "1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="doppel-batch-tests")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def studio(tmp_path_factory, ray_session):
    """A workspace with Jane (consent for rig, retarget, export) and the outputs of one batch: Jane's rig, two
    retargets onto it and one export."""
    root = tmp_path_factory.mktemp("studio")
    ws = Workspace.init(root / "ws")
    add_actor(ws, "Jane Doe", actor_id="jane")
    soon = dt.date.today() + dt.timedelta(days=30)
    consent = grant(ws, "jane", ["rig", "retarget", "export"], "Film", soon)
    _clips(ws.root / "mocap", ["walk", "turn"])
    plan = _write(ws.root / "plan.yaml", """
workspace: .
production: Film
actor: jane
jobs:
  - {stage: rig, out: rigs/jane, preview_size: 64}
  - {stage: retarget, clips: "mocap/*.bvh", rig: rigs/jane, out: "anims/{clip}", preview_size: 32}
  - {stage: export, anim: anims/walk, rig: rigs/jane, formats: [glb], no_texture: true, out: "exports/walk.{format}"}
""")
    res = run_batch(build_dag(load_plan(plan)), BatchConfig(max_retries=1))
    return ws, plan, res, consent


def test_batch_runs_gates_and_registers_in_the_driver(studio, capsys):
    ws, plan, res, consent = studio
    assert res.ok, {k: (s.status, s.message) for k, s in res.states.items()}
    assert res.count("done") == 4
    assets = list_assets(ws, actor_id="jane")
    assert sorted(a.kind for a in assets) == ["animation", "animation", "export", "rig"]
    assert all(a.consent_id == consent.id for a in assets)
    export = next(a for a in assets if a.kind == "export")
    assert sorted(p.kind for p in parents_of(ws, export.id)) == ["animation", "rig"]
    gate_records = [e for e in entries(ws) if e.record.get("action", "").startswith("gate.")]
    assert len(gate_records) == 4 and {e.record["command"] for e in gate_records} == \
        {"batch rig", "batch retarget", "batch export"}
    assert verify(ws).ok
    assert (ws.root / "exports" / "walk.glb").stat().st_size > 1000
    from assets.export_verify import verify_export

    signed = verify_export(ws.root / "exports" / "walk.glb", ws)       # signed by the worker under the grant
    assert signed.c2pa.state == "trusted" and signed.record.asset_id == export.id
    code, _, err = run_cli(capsys, "audit", "verify", "--workspace", ws.root)
    assert code == 0, err
    # the report escapes user strings (a job name is one)
    st = next(iter(res.states.values()))
    object.__setattr__(st.task, "job_name", "<script>alert(1)</script>")
    html_text = write_html_report(res, plan, ws.root / "batch_report.html").read_text()
    assert "<script>alert" not in html_text and "&lt;script&gt;alert(1)" in html_text
    assert html_text.count("<tr>") == 1 + 3 + 1 + 4      # stage header + 3 stages + task header + 4 tasks


def test_cli_dry_run_prints_the_dag_and_runs_nothing(tmp_path, capsys):
    _clips(tmp_path / "mocap", ["a", "b"])
    plan = _write(tmp_path / "plan.yaml", 'jobs:\n  - {stage: retarget, clips: "mocap/*.bvh", rig: mocap/a.bvh, '
                  'out: "anims/{clip}"}\n  - {stage: export, rig: "anims/*", formats: [glb, usdz], '
                  'out: "x/{rig}.{format}"}\n')
    code, out, err = run_cli(capsys, "batch", plan, "--dry-run")
    assert code == 0, err
    assert "6 tasks" in out and "[export] x/b.usdz  (after: retarget:anims/b)" in out
    assert not (tmp_path / "anims").exists() and not (tmp_path / "batch_report.html").exists()
    _write(plan, "jobs:\n  - {stage: retarget, clips: '*.none', rig: r, out: o}\n")
    code, _, err = run_cli(capsys, "batch", plan)
    assert code == 1 and "line 2" in err and "matches nothing" in err and len(err.strip().splitlines()) == 1


def test_resume_skips_current_tasks_and_reruns_what_changed(studio):
    ws, plan, _, _ = studio
    n_audit, n_assets = len(entries(ws)), len(list_assets(ws))
    dag = build_dag(load_plan(plan))
    res = run_batch(dag, BatchConfig(resume=True))
    assert res.count("skipped") == 4 and res.ray.startswith("Ray not started")
    assert len(entries(ws)) == n_audit and len(list_assets(ws)) == n_assets       # nothing registered twice
    # a changed clip: its retarget and the export made from it run again, the rest is skipped
    _clips(ws.root / "mocap", ["walk"], seconds=0.4)
    res = run_batch(build_dag(load_plan(plan)), BatchConfig(resume=True))
    assert {k for k, s in res.states.items() if s.status == "done"} == {"retarget:anims/walk",
                                                                         "export:exports/walk.glb"}
    assert res.count("skipped") == 2
    assert verify(ws).ok


def test_cli_runs_a_plan_reports_a_failed_task_and_resumes(tmp_path, capsys, ray_session):
    _clips(tmp_path / "mocap", ["good"])
    _write(tmp_path / "mocap" / "broken.bvh", "HIERARCHY\nROOT Hips\n{\n")          # truncated: this task fails
    write_bvh(tmp_path / "target.bvh", synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"]),
              units="cm")
    plan = _write(tmp_path / "plan.yaml", 'jobs:\n  - {stage: retarget, clips: "mocap/*.bvh", rig: target.bvh, '
                  'out: "anims/{clip}", preview_size: 32}\n')
    code, out, err = run_cli(capsys, "batch", plan, "--workers", 2)
    assert code == 1, err
    flat = out.replace("\n", " ")
    assert "2 tasks (1 done, 1 failed)" in flat and "failed retarget:anims/broken" in flat and "broken.bvh" in out
    assert "│ retarget │" in out and "…" not in out        # off a terminal the final table is printed whole
    assert (tmp_path / "anims" / "good" / "animation.npz").is_file() and not (tmp_path / "anims" / "broken").exists()
    report = (tmp_path / "batch_report.html").read_text()
    assert "retarget:anims/good" in report and "failed" in report
    # each task's output linked from its row (relative to the report); nothing for the failed one
    assert "<a href='anims/good'>good</a>" in report and "href='anims/broken'" not in report
    (tmp_path / "mocap" / "broken.bvh").unlink()
    code, out, err = run_cli(capsys, "batch", plan, "--resume")
    assert code == 0, err
    assert "1 tasks (1 skipped)" in out.replace("\n", " ")


def killing_retarget(clip, rig, out, marker, **kw):
    """The retarget command, but its worker process is SIGKILLed the first time (the marker file remembers)."""
    import torch

    from doppel.commands.retarget import retarget

    if not Path(marker).exists():
        Path(marker).write_text("killed once\n")
        os.kill(os.getpid(), signal.SIGKILL)
    Path(marker).write_text(f"{torch.get_num_threads()} {os.environ.get('OMP_NUM_THREADS')}\n")   # the retry's
    return call_command(retarget, clip=clip, rig=rig, out=out, **kw)


def _killing_call(v: dict) -> dict:
    return {**_retarget_call(v), "marker": str(Path(v["out"]).parent.parent / f"killed-{Path(v['out']).name}")}


def test_a_worker_killed_mid_task_is_retried_and_its_output_appears_once(tmp_path, ray_session):
    from doppel.batch.stages import RetargetJob

    clips = _clips(tmp_path / "mocap", ["a", "b"])
    write_bvh(tmp_path / "target.bvh", synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"]),
              units="cm")
    register_stage(StageSpec("retarget (killed once)", RetargetJob, "retarget", f"{__name__}:killing_retarget",
                             (InputField("clips", "clip"), InputField("rig", "rig")), _killing_call, _retarget_gate))
    try:
        plan = _write(tmp_path / "plan.yaml", 'jobs:\n  - {stage: retarget (killed once), clips: "mocap/*.bvh", '
                      'rig: target.bvh, out: "anims/{clip}", preview_size: 32}\n')
        dag = build_dag(load_plan(plan))
        res = run_batch(dag, BatchConfig(max_retries=2))
    finally:
        del STAGES["retarget (killed once)"]
    assert res.ok, {k: (s.status, s.message) for k, s in res.states.items()}
    # each worker did die once; the retry ran with one torch thread and OMP_NUM_THREADS=1
    assert [(tmp_path / f"killed-{c.stem}").read_text() for c in clips] == ["1 1\n", "1 1\n"]
    assert sorted(p.name for p in (tmp_path / "anims").iterdir()) == ["a", "b"]     # no leftover temporary folders
    assert all((tmp_path / "anims" / c.stem / "animation.npz").is_file() for c in clips)
    assert all(current_record(t, tmp_path / ".doppel_batch") for t in dag.tasks.values())


def test_consent_revoked_mid_batch_stops_that_actors_pending_tasks(studio, tmp_path):
    ws, _, _, consent = studio
    _clips(ws.root / "mocap2", ["c1", "c2", "c3"])
    write_bvh(ws.root / "target.bvh", synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES["unreal"]),
              units="cm")
    plan = _write(ws.root / "plan2.yaml", """
workspace: .
production: Film
jobs:
  - {stage: retarget, clips: "mocap2/*.bvh", rig: rigs/jane, out: "anims2/jane_{clip}", preview_size: 32}
  - {stage: retarget, clips: "mocap2/*.bvh", rig: target.bvh, out: "anims2/skel_{clip}", preview_size: 32}
""")
    n_refused = sum(e.record.get("action") == "gate.refused" for e in entries(ws))

    def revoke_once_jane_runs(result):       # the first of Jane's tasks is running: her consent is withdrawn
        running = [s for s in result.states.values() if s.status == "running" and "jane" in s.task.id]
        if running and not revoked:
            revoke(ws, consent.id, "withdrawn by the actor")
            revoked.append(running[0].task.id)

    revoked: list[str] = []
    res = run_batch(build_dag(load_plan(plan)), BatchConfig(workers=1), progress=revoke_once_jane_runs)
    status = {k: s.status for k, s in res.states.items()}
    assert status[revoked[0]] == "flagged"                        # ran: registered and flagged
    assert sorted(v for k, v in status.items() if "jane" in k) == ["flagged", "refused", "refused"]
    assert all(v == "done" for k, v in status.items() if "skel_" in k)
    assert sorted(p.name for p in (ws.root / "anims2").iterdir() if "jane" in p.name) == [revoked[0].split("/")[-1]]
    refused = sum(e.record.get("action") == "gate.refused" for e in entries(ws))
    assert refused == n_refused + 2
    flagged = [e for e in entries(ws) if e.record.get("outcome") == "consent_revoked_during_run"]
    assert len(flagged) == 1 and verify(ws).ok


def test_texture_render_train_and_chunked_render_shot_are_registered_stages(tmp_path):
    """The neural double's stages plug into plans: shots split into chunks whose command ranges are B-exclusive."""
    from doppel.batch.stages import STAGES

    assert {"texture", "render train", "render shot"} <= set(STAGES)
    shot = STAGES["render shot"]
    assert shot.chunk == "frames" and shot.gpu and STAGES["render train"].gpu
    call = shot.call({"model": "m", "cameras": "c.json", "camera": [], "rig": "r", "anim": "a", "frames": "0:23",
                      "renderer": "neural", "size": None, "jitter": 4, "views_per_call": 2, "device": "auto",
                      "out": "o", "label": None, "recentre": True, "aovs": "depth,motion", "lens": "distorted",
                      "shutter": 180.0, "shutter_samples": 12, "shutter_position": "start"})
    assert call["frames"] == "0:24" and call["rig"] == Path("r") and call["jitter"] == 4
    assert (call["shutter"], call["shutter_samples"], call["shutter_position"]) == (180.0, 12, "start")
    with pytest.raises(ValueError, match="less than or equal to 360"):
        shot.model(model="m", cameras="c.json", out="o", shutter=400)
    assert call["aovs"] == "depth,motion"
    with pytest.raises(ValueError, match="unknown pass albedo"):
        shot.model(model="m", cameras="c.json", out="o", aovs="albedo")
    assert call["views_per_call"] == 2 and call["recentre"] is True
    assert call["resume"] == "auto"       # a task retried after its worker was lost goes on from its frames
    job = shot.model(model="m", cameras="c.json", out="o")
    assert job.jitter is None and job.views_per_call is None    # the command's defaults (shot_jitter, views_per_call)
    assert (job.shutter, job.shutter_samples, job.shutter_position) == (0.0, 8, "centre")   # --shutter's defaults
    assert job.recentre is False
    gate = shot.gate({"model": "m", "cameras": "c.json", "rig": "r", "anim": "a"})
    assert gate.likeness == ("m", "r") and gate.evidence == ("a",)


SWAP_PLAN = """
workspace: .
production: Film
actor: jane
jobs:
  - {stage: rig, out: rigs/jane, preview_size: 64}
  - {stage: swap, plate: "plates/*.png", double: rigs/jane, plate_actor: stunt, out: "swaps/{plate}.png"}
"""


def test_swap_in_a_batch_passes_both_gates_in_the_driver(tmp_path, ray_session):
    """A swap job is gated for the double's actor and for the plate's performer (`plate_actor`), both checked in
    the driver and both audited; without the performer's consent the task is refused and writes nothing."""
    import cv2
    import skimage.data

    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe", actor_id="jane")
    add_actor(ws, "Stunt Double", actor_id="stunt")
    soon = dt.date.today() + dt.timedelta(days=30)
    grant(ws, "jane", ["rig", "face_replace"], "Film", soon)
    (ws.root / "plates").mkdir()
    face = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    for name in ("a", "b"):
        cv2.imwrite(str(ws.root / "plates" / f"{name}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    plan = _write(ws.root / "plan.yaml", SWAP_PLAN)
    res = run_batch(build_dag(load_plan(plan)), BatchConfig(max_retries=0))
    swaps = {k: s for k, s in res.states.items() if s.task.stage == "swap"}
    assert len(swaps) == 2 and all(s.status == "refused" and "stunt" in s.message for s in swaps.values())
    assert not (ws.root / "swaps").exists() or not any((ws.root / "swaps").iterdir())
    grant(ws, "stunt", ["face_replace"], "Film", soon)
    res = run_batch(build_dag(load_plan(plan)), BatchConfig(max_retries=0, resume=True))
    assert res.ok, {k: (s.status, s.message) for k, s in res.states.items()}
    assert (ws.root / "swaps" / "a.png").is_file() and (ws.root / "swaps" / "b_swap" / "tracks.npz").is_file()
    swapped = [a for a in list_assets(ws, actor_id="jane") if a.kind == "swap"]
    assert len(swapped) == 2
    # the performer's too (their revocation lists them), once each: the two gates' outputs are one
    assert len([a for a in list_assets(ws, actor_id="stunt") if a.kind == "swap"]) == 2
    from assets.media_verify import verify_file

    rep = verify_file(ws.root / "swaps" / "a.png", ws)
    rec = rep.record
    assert rec is not None, (rep.c2pa, rep.watermark)
    assert rec.actor == "jane" and rec.performer == "stunt" and rec.performer_status == "valid", rec
    commands = [e.record.get("command") for e in entries(ws) if e.record.get("action", "").startswith("gate.")]
    assert commands.count("batch swap (plate performer)") >= 2 and commands.count("batch swap") == 2
    assert verify(ws).ok


def test_a_batch_swap_honours_the_plate_actors_face_reference(tmp_path, ray_session, capsys):
    """The driver finds the plate actor's face reference (its workers never open the workspace) and gates it with
    the plate: the plate showing the person it describes is swapped, one showing somebody else fails, unwritten."""
    import cv2
    import numpy as np
    import skimage.data

    from tests.cli_runner import run_cli

    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe", actor_id="jane")
    add_actor(ws, "Stunt Double", actor_id="stunt")
    soon = dt.date.today() + dt.timedelta(days=30)
    grant(ws, "jane", ["rig", "face_replace"], "Film", soon)
    grant(ws, "stunt", ["face_replace"], "Film", soon)
    (ws.root / "plates").mkdir()
    astronaut = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    cameraman = cv2.resize(np.repeat(skimage.data.camera()[0:300, 100:400, None], 3, axis=2), (256, 256))
    for name, face in (("astronaut", astronaut), ("cameraman", cameraman)):
        cv2.imwrite(str(ws.root / "plates" / f"{name}.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    photo = tmp_path / "stunt.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    code, _, err = run_cli(capsys, "actor", "face", "stunt", photo, "--production", "Film", "-W", ws.root)
    assert code == 0, err
    res = run_batch(build_dag(load_plan(_write(ws.root / "plan.yaml", SWAP_PLAN))), BatchConfig(max_retries=0))
    swaps = {s.task.values["plate"].rsplit("/", 1)[-1]: s for s in res.states.values() if s.task.stage == "swap"}
    assert swaps["astronaut.png"].status == "done", swaps["astronaut.png"].message
    assert swaps["astronaut.png"].task.values["face_reference"] == str(ws.root / "references" / "stunt")
    assert swaps["cameraman.png"].status == "failed" and "none is stunt's" in swaps["cameraman.png"].message
    assert (ws.root / "swaps" / "astronaut.png").is_file() and not (ws.root / "swaps" / "cameraman.png").exists()


def test_an_embedded_cluster_needs_no_writable_home(tmp_path, monkeypatch):
    """Ray writes a new local cluster's token to ~/.ray/auth_token: as a user with no writable home (a render
    node's account) `doppel batch` failed with "Permission denied". The token then lives in the environment."""
    from pathlib import Path

    from doppel.batch import execute

    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):    # restored by monkeypatch afterwards
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    (tmp_path / "home").write_text("a file where the home folder should be")
    monkeypatch.setattr(Path, "home", staticmethod(lambda: tmp_path / "home"))
    execute._token_without_home()
    assert len(os.environ["RAY_AUTH_TOKEN"]) == 64
    monkeypatch.setenv("RAY_AUTH_TOKEN", "the user's")
    execute._token_without_home()
    assert os.environ["RAY_AUTH_TOKEN"] == "the user's"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setattr(Path, "home", staticmethod(lambda: tmp_path / "writable"))
    execute._token_without_home()
    assert "RAY_AUTH_TOKEN" not in os.environ                                 # Ray keeps its own file there


def test_a_swap_task_takes_each_plates_lens(tmp_path):
    """`plate_camera:` in a plan is an input: found under the plan's root, a template per plate ("each shot's lens
    grid"), missing ones refused at planning; it and `plate_camera_name:` reach `doppel swap --plate-camera /
    --plate-camera-name`. `performer_photo:` is found under the root too."""
    import inspect

    from doppel.batch.stages import STAGES
    from doppel.commands.swap import swap

    for shot in ("sh010", "sh020"):
        _write(tmp_path / "plates" / f"{shot}.mov", "")
        _write(tmp_path / "lenses" / f"{shot}.json", "{}")
    (tmp_path / "rigs" / "jane").mkdir(parents=True)
    plan = _write(tmp_path / "plan.yaml", """jobs:
  - {stage: swap, plate: "plates/*.mov", double: rigs/jane, plate_camera: "lenses/{plate}.json",
     plate_camera_name: A-cam, performer_photo: people/jo.png, out: "swaps/{plate}.mov"}
""")
    _write(tmp_path / "people" / "jo.png", "")
    tasks = build_dag(load_plan(plan)).tasks
    spec = STAGES["swap"]
    for shot in ("sh010", "sh020"):
        call = spec.call(tasks[f"swap:swaps/{shot}.mov"].values)
        assert call["plate_camera"] == tmp_path / "lenses" / f"{shot}.json" and call["plate_camera_name"] == "A-cam"
        assert call["performer_photo"] == tmp_path / "people" / "jo.png"     # under the root, not the worker's cwd
        assert set(call) <= set(inspect.signature(swap).parameters)
    (tmp_path / "lenses" / "sh020.json").unlink()
    with pytest.raises(PlanError, match="plate_camera.*lenses/sh020.json: not found"):
        build_dag(load_plan(plan))
    for kind in ("undistort", "redistort"):                   # or the lens's ST-maps, each shot's
        _write(tmp_path / "stmaps" / f"sh010_{kind}.exr", "")
    plan = _write(tmp_path / "maps.yaml", """jobs:
  - {stage: swap, plate: plates/sh010.mov, double: rigs/jane, focal_px: 1800, out: "swaps/{plate}.mov", shutter: 180,
     plate_undistort: "stmaps/{plate}_undistort.exr", plate_redistort: "stmaps/{plate}_redistort.exr"}
""")
    call = spec.call(build_dag(load_plan(plan)).tasks["swap:swaps/sh010.mov"].values)
    assert call["plate_stmaps"] == ",".join(str(tmp_path / "stmaps" / f"sh010_{k}.exr") for k in ("undistort",
                                                                                                  "redistort"))
    assert call["focal_px"] == 1800 and (call["shutter"], call["shutter_samples"]) == (180, 6)
    _write(plan, plan.read_text().replace("shutter: 180", "shutter: auto"))     # the plate's headers' angle
    assert spec.call(build_dag(load_plan(plan)).tasks["swap:swaps/sh010.mov"].values)["shutter"] == "auto"
    _write(plan, plan.read_text().replace("shutter: auto", "shutter: slow"))
    with pytest.raises(PlanError, match="shutter"):
        build_dag(load_plan(plan))
    _write(plan, plan.read_text().replace("shutter: slow", "shutter: 180, plate_principal: [990.5, 530]"))
    assert spec.call(build_dag(load_plan(plan)).tasks["swap:swaps/sh010.mov"].values)["plate_principal"] == \
        "990.5,530.0"
    _write(plan, plan.read_text().replace(", plate_principal: [990.5, 530]", ""))
    _write(plan, plan.read_text().replace(', plate_redistort: "stmaps/{plate}_redistort.exr"', ""))
    with pytest.raises(PlanError, match="plate_undistort and plate_redistort go together"):
        build_dag(load_plan(plan))
    _write(plan, plan.read_text().replace('plate_undistort: "stmaps/{plate}_undistort.exr"',
                                          "plate_principal: [990, 530]"))
    with pytest.raises(PlanError, match="plate_principal is the principal point of the ST-maps"):
        build_dag(load_plan(plan))


def test_files_a_job_names_are_found_under_the_plans_root(tmp_path):
    """A retarget's bone map and an export's texture are inputs: resolved against the plan's root (they reached
    the worker as the relative paths they were, looked up from its working folder), checked at planning; a
    retarget's subject file is found there too, a subject's name kept as it is."""
    from doppel.batch.stages import STAGES

    for f in ("mocap/walk.bvh", "mocap/fall.c3d", "maps/jane.yaml", "looks/jane.png", "subjects/bob.vsk"):
        _write(tmp_path / f, "")
    (tmp_path / "rigs" / "jane").mkdir(parents=True)
    plan = _write(tmp_path / "plan.yaml", """jobs:
  - {stage: retarget, clips: mocap/walk.bvh, rig: rigs/jane, bone_map: maps/jane.yaml, out: anims/walk}
  - {stage: retarget, clips: mocap/fall.c3d, rig: rigs/jane, subject: subjects/bob.vsk, out: anims/fall}
  - {stage: retarget, clips: mocap/fall.c3d, rig: rigs/jane, subject: Bob, out: anims/fall_bob}
  - {stage: export, rig: rigs/jane, formats: [glb], texture: looks/jane.png, out: "exports/jane.{format}"}
""")
    tasks = build_dag(load_plan(plan)).tasks
    assert STAGES["retarget"].call(tasks["retarget:anims/walk"].values)["bone_map"] == tmp_path / "maps" / "jane.yaml"
    # a subject is a .vsk file (found under the root) or a subject's name (as written)
    assert STAGES["retarget"].call(tasks["retarget:anims/fall"].values)["subject"] == tmp_path / "subjects" / "bob.vsk"
    assert STAGES["retarget"].call(tasks["retarget:anims/fall_bob"].values)["subject"] == Path("Bob")
    assert STAGES["export"].call(tasks["export:exports/jane.glb"].values)["texture"] == tmp_path / "looks" / "jane.png"
    (tmp_path / "maps" / "jane.yaml").unlink()
    with pytest.raises(PlanError, match="bone_map.*maps/jane.yaml: not found"):
        build_dag(load_plan(plan))


def test_a_retarget_task_takes_a_range_of_its_clip():
    """`frames: "A:B"` in a plan reaches `doppel retarget --frames` (a long take in parts), `resample: 24`
    reaches `--resample` (a 120 Hz take plotted at the film's rate), `subject:` a C3D performer's VSK."""
    import inspect

    from doppel.batch.stages import STAGES
    from doppel.commands.retarget import retarget

    spec = STAGES["retarget"]
    job = spec.model(clips="mocap/*.bvh", rig="rigs/jane", out="anims/{clip}", frames="0:14400", resample=24)
    call = spec.call({**job.model_dump(), "out": "anims/walk", "clips": "mocap/walk.bvh"})
    assert call["frames"] == "0:14400" and set(call) <= set(inspect.signature(retarget).parameters)
    assert call["resample"] == 24.0 and call["subject"] is None
    job = spec.model(clips="stunts/*.c3d", rig="rigs/jane", out="anims/{clip}", subject="subjects/bob.vsk")
    call = spec.call({**job.model_dump(), "out": "anims/fall", "clips": "stunts/fall.c3d"})
    assert call["subject"] == Path("subjects/bob.vsk")                       # `doppel retarget --subject`

"""A take's fit as a mocap clip (`doppel retarget FIT_DIR --rig RIG --out ANIM --fps F`): the actor's own
performance, captured by the rig's cameras, onto their double's rig; the rig posed by it is the fitted take."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from doppel.cli import main


def _run(*args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    return e.value.code


@pytest.fixture(scope="module")
def take_fit(take, tmp_path_factory):
    sc, ing = take
    root = tmp_path_factory.mktemp("take_clip")
    assert _run("fit", sc.session_dir, "--landmarks", ing, "--out", root / "fit", "--frame", "all", "--stages",
                "20,60,0,20", "--detail-iterations", "0") == 0
    assert _run("rig", "--fit", root / "fit", "--out", root / "rig") == 0
    return root


def test_a_take_retargeted_onto_its_actors_rig_is_the_fitted_take(take_fit, capsys):
    from rigging.animation import Animation, in_rig_order
    from rigging.rig import Rig

    fit, anim_dir = take_fit / "fit", take_fit / "anim"
    assert _run("retarget", fit, "--rig", take_fit / "rig", "--out", anim_dir, "--fps", "30", "--no-cleanup") == 0
    assert "retargeted 3 frames" in capsys.readouterr().out
    anim, rig = Animation.load(anim_dir), Rig.load(take_fit / "rig")
    assert anim.fps == 30.0 and anim.local_rotations.shape[0] == 3
    R, T, _ = in_rig_order(anim, rig)
    frames = json.loads((fit / "metrics.json").read_text())["frames"]
    errors = []
    for t, row in enumerate(frames.values()):
        posed = rig.pose(R[t], T[t]).double().numpy().reshape(-1, 3)
        fitted = trimesh.load(fit / row["folder"] / "fit_mesh.ply", process=False).vertices
        errors.append(np.linalg.norm(posed - fitted, axis=1).mean())
    # 0.64-0.67 mm here (the floor the retargeter finds under the take's feet); 1.8-2.9 mm when it moved the 51 of
    # Anny's 104 joints it has roles for and left the others (spine links, twist bones, toes) at bind
    assert max(errors) < 0.0012, errors
    assert json.loads((anim_dir / "metrics.json").read_text())["same_skeleton"] is True
    manifest = json.loads((anim_dir / "manifest.json").read_text())
    assert manifest["inputs"]["clip"]["path"].endswith("fit/manifest.json")


def test_a_takes_frame_rate_and_units(take_fit, capsys, caplog):
    fit = take_fit / "fit"
    assert _run("retarget", fit, "--explain") == 0
    assert "upperleg01.L" in capsys.readouterr().out
    assert "24 fps assumed (--fps gives the take's)" in caplog.text
    assert _run("retarget", fit, "--rig", take_fit / "rig", "--out", take_fit / "a2", "--units", "cm") == 1
    assert "--units applies to BVH clips" in capsys.readouterr().err
    assert _run("retarget", fit, "--rig", take_fit / "rig", "--out", take_fit / "a3", "--fps", "0") == 1
    assert "--fps must be a frame rate > 0" in capsys.readouterr().err
    assert not (take_fit / "a2").exists() and not (take_fit / "a3").exists()
    one = take_fit / "fit" / "frames" / "001"                     # a frame's folder: the fit of one frame
    assert _run("retarget", one, "--rig", take_fit / "rig", "--out", take_fit / "a4") == 1
    assert "the fit of one frame is a pose, not a clip" in capsys.readouterr().err


def test_a_stunt_performers_take_needs_their_consent(take, tmp_path, capsys):
    """bob (the stunt performer) performed the take, jane's double gets it: jane's consent for her rig and bob's
    for his performance (use retarget), each checked and audited, the manifest naming both; the animation is
    jane's, and bob's as a performance, so that his revocation's purge withdraws it. Before: bob's take was read as
    any vendor's clip, his consent never asked."""
    import datetime as dt

    from assets.actors import add_actor
    from assets.consent import grant, revoke
    from assets.workspace import Workspace
    from tests.cli_runner import run_cli

    ws = Workspace.init(tmp_path / "ws")
    for name, aid in (("Jane Doe", "jane"), ("Bob Stunt", "bob")):
        add_actor(ws, name, actor_id=aid)
    soon = dt.date.today() + dt.timedelta(days=10)
    grant(ws, "bob", ["fit"], "Film", soon)
    grant(ws, "jane", ["rig", "retarget"], "Film", soon)
    sc, ing = take
    W = ("--workspace", ws.root, "--production", "Film")
    fit, rig, anim = tmp_path / "bob_take", tmp_path / "jane_rig", tmp_path / "anim"
    code, _, err = run_cli(capsys, "fit", sc.session_dir, "--landmarks", ing, "--out", fit, "--frame", "all",
                           "--stages", "10,30,0,10", "--detail-iterations", "0", "--actor", "bob", *W)
    assert code == 0, err
    code, _, err = run_cli(capsys, "rig", "--out", rig, "--actor", "jane", "--preview-size", 64, *W)
    assert code == 0, err
    args = ("retarget", fit, "--rig", rig, "--out", anim, "--fps", "30", "--preview-size", 64, *W)
    code, _, err = run_cli(capsys, *args)
    assert code == 1 and "no valid consent from actor 'bob' for use 'retarget'" in err and not anim.exists(), err
    bob_retarget = grant(ws, "bob", ["retarget"], "Film", soon)
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    params = json.loads((anim / "manifest.json").read_text())["params"]
    assert params["actor_id"] == "jane" and params["performer_id"] == "bob"
    code, out, _ = run_cli(capsys, "verify", anim / "preview.png", "--json", "--workspace", ws.root)
    rep = json.loads(out)                                  # the preview's credentials name the performer too
    assert rep["c2pa"]["assertion"]["actor"] == "jane" and rep["c2pa"]["assertion"]["performer"] == "bob", rep
    # the animation is jane's double's, bob's part in it registered as a performance (not whose likeness it is):
    # her export of it goes on (registered to bob as an animation, it was refused as mixing actors), with bob's
    # consent for that use too
    grant(ws, "jane", ["export"], "Film", soon)
    code, _, err = run_cli(capsys, "export", rig, "--anim", anim, "--out", tmp_path / "jane.glb", "--no-texture", *W)
    assert code == 1 and "no valid consent from actor 'bob' for use 'export'" in err, err   # his performance in it
    grant(ws, "bob", ["export"], "Film", soon)
    code, _, err = run_cli(capsys, "export", rig, "--anim", anim, "--out", tmp_path / "jane.glb", "--no-texture", *W)
    assert code == 0, err
    # a plan's task asks for both consents too (the driver gates bob's take as the command does)
    from doppel.batch.dag import build_dag
    from doppel.batch.execute import BatchConfig, run_batch
    from doppel.batch.plan import load_plan

    plan = tmp_path / "plan.yaml"
    plan.write_text(f"workspace: {ws.root}\nproduction: Film\njobs:\n  - {{stage: retarget, clips: {fit}, "
                    f"rig: {rig}, out: {tmp_path / 'banim'}, fps: 30, preview_size: 32}}\n")
    res = run_batch(build_dag(load_plan(plan)), BatchConfig(workers=1))
    assert [s.status for s in res.states.values()] == ["done"], res.events
    assert json.loads((tmp_path / "banim" / "manifest.json").read_text())["params"]["performer_id"] == "bob"
    code, _, err = run_cli(capsys, "export", rig, "--anim", tmp_path / "banim", "--out", tmp_path / "jane_b.glb",
                           "--no-texture", *W)
    assert code == 0, err
    code, out, _ = run_cli(capsys, "assets", "list", "--actor", "bob", "--workspace", ws.root)
    assert code == 0 and out.count("performance-") == 2, out    # his part in both animations, as a performance
    revoke(ws, bob_retarget.id, "withdrawn by the performer")        # bob withdraws: no new retarget of his take
    code, _, err = run_cli(capsys, *args[:5], tmp_path / "anim3", *args[6:])
    assert code == 1 and "bob" in err and not (tmp_path / "anim3").exists(), err
    from assets.consent_purge import execute_purge, plan_purge

    execute_purge(ws, plan_purge(ws, bob_retarget.id))   # ... and the animations of his take go, jane's export too
    assert not anim.exists() and not (tmp_path / "banim").exists() and not (tmp_path / "jane.glb").exists()
    assert not (tmp_path / "jane_b.glb").exists()        # made from the batch's animation: found through bob's part
    assert rig.exists() and fit.exists()                 # jane's rig and bob's take (his fit consent) stay
    # the performer is who the take's fit is registered to: naming someone else is refused
    code, _, err = run_cli(capsys, "retarget", fit, "--rig", rig, "--out", tmp_path / "anim2", "--performer", "jane",
                           "--preview-size", 64, *W)
    assert code == 1 and "bob" in err and not (tmp_path / "anim2").exists(), err
    code, out, _ = run_cli(capsys, "audit", "show", "--last", "0", "--workspace", ws.root)
    refused = [json.loads(line) for line in out.splitlines() if '"gate.refused"' in line]
    assert [r["command"] for r in refused] == ["retarget (take performer)", "export (performance of bob)",
                                              "retarget (take performer)", "retarget (take performer)"], out
    code, out, _ = run_cli(capsys, "assets", "list", "--actor", "bob", "--workspace", ws.root)
    assert code == 0 and "animation" not in out and "fit" in out, out    # his take is his


def test_performer_is_for_a_take(take_fit, tmp_path, capsys):
    from mocap_retarget.bvh import write_bvh
    from mocap_retarget.synthetic import WalkSpec, synthetic_walk

    clip = tmp_path / "walk.bvh"
    write_bvh(clip, synthetic_walk(WalkSpec(seconds=0.2, fps=30)), units="cm")
    assert _run("retarget", clip, "--rig", take_fit / "rig", "--out", tmp_path / "a", "--performer", "bob") == 1
    assert "--performer names who performed a capture take" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()

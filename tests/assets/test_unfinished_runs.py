"""What a run under a consent leaves when it is killed (a swap's frames in a temporary folder, a training's
checkpoint) is found and deleted by that consent's purge, and only that consent's. Before, a killed run wrote no
record at all, and a purge after the revocation left its frames of the actor's face on disk."""

import datetime as dt
import subprocess
import sys
import textwrap

import pytest

from assets import audit
from assets.actors import add_actor
from assets.consent import ConsentError, grant, revoke
from assets.consent_purge import execute_purge, plan_purge
from assets.unfinished_runs import BEGIN, unfinished_of
from assets.workspace import Workspace
from core.leftovers import checkpoint_sibling, leftovers_of, owned_by, owners_of, record_owner
from core.stage_folders import temp_sibling
from doppel.consent_gate import gated
from tests.cli_runner import run_cli

LATER = dt.date.today() + dt.timedelta(days=365)

_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from assets.workspace import Workspace
    import tempfile
    from core.leftovers import checkpoint_sibling, record_owner, work_folder
    from core.stage_folders import temp_sibling
    from doppel.consent_gate import gated

    root, actor, production, out, checkpoint = sys.argv[1:6]
    with gated(Workspace.open(root), actor, "face_replace", production, command="swap", outputs=[out]), \
            work_folder(out, temp_default=True):
        with open(tempfile.mkstemp(suffix=".png")[1], "wb") as f:      # e.g. the double's texture, baked
            f.write(b"the actor's skin")
        frames = temp_sibling(out, directory=True)
        (frames / "f.0001.png").write_bytes(b"a frame of the actor's face")
        if checkpoint == "1":
            ck = checkpoint_sibling(out, "swap")
            ck.mkdir()
            record_owner(ck)
        os.kill(os.getpid(), signal.SIGKILL)
""")


def _killed_run(ws, actor, production, out, checkpoint=False):
    """A gated run in another process that writes into a temporary sibling of ``out`` (and a checkpoint) and is
    killed there."""
    done = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(ws.root), actor, production, str(out),
                           "1" if checkpoint else "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr


@pytest.fixture()
def studio(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe", actor_id="jane")
    add_actor(ws, "Bob Roe", actor_id="bob")
    a = grant(ws, "jane", "face_replace", "Film", LATER)
    b = grant(ws, "bob", "face_replace", "Film", LATER)
    return ws, a.id, b.id


def test_a_killed_runs_frames_and_checkpoint_are_purged_with_its_consent_only(studio):
    ws, jane, bob = studio
    out, other = ws.root / "shots" / "sh010.exr", ws.root / "shots" / "sh011.exr"
    (ws.root / "shots").mkdir()
    _killed_run(ws, "jane", "Film", out, checkpoint=True)
    _killed_run(ws, "bob", "Film", out)     # bob's run at the same name (clears jane's dead temporary folder)
    _killed_run(ws, "jane", "Film", other)
    left = leftovers_of(out) + leftovers_of(other)
    assert sorted(p.kind for p in left) == ["checkpoint"] + ["temporary"] * 4 and not any(p.alive for p in left)
    assert sum(".work-" in p.path.name for p in left) == 2        # the working folders (one per output)
    begins = [e.record for e in audit.entries(ws) if e.record.get("action") == BEGIN]
    assert [b["consent"] for b in begins] == [jane, bob, jane] and begins[0]["outputs"] == ["shots/sh010.exr"]

    revoke(ws, jane, "withdrawn")
    plan = plan_purge(ws, jane)
    bobs = [p.path for p in leftovers_of(out) if p.kind == "temporary"]
    assert len(bobs) == 2                            # his run cleared jane's dead ones at that name, made its own
    assert sorted(i.path for i in plan.to_delete) == sorted(p.path for p in left if p.path not in bobs)
    assert {i.kind for i in plan.to_delete} == {"unfinished", "checkpoint"}
    execute_purge(ws, plan)
    assert [p.path for p in leftovers_of(out) + leftovers_of(other)] == bobs       # bob's are his
    assert plan_purge(ws, jane).to_delete == []


def test_a_killed_swaps_frames_are_the_plate_performers_too(studio):
    """A swap passes two gates (the double's actor, the plate's performer) in one command: what it left is both
    consents', whichever gate began last."""
    ws, jane, bob = studio
    out = ws.root / "shots" / "sh050"
    out.parent.mkdir()
    code = textwrap.dedent("""
        import os, signal, sys
        from assets.workspace import Workspace
        from core.stage_folders import temp_sibling
        from doppel.consent_gate import gated

        ws, out = Workspace.open(sys.argv[1]), sys.argv[2]
        with gated(ws, "bob", "face_replace", "Film", command="swap (plate performer)", outputs=[out]), \\
                gated(ws, "jane", "face_replace", "Film", command="swap", outputs=[out]):
            temp_sibling(out, directory=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", code, str(ws.root), str(out)]).returncode == -9
    for consent in (jane, bob):
        revoke(ws, consent, "withdrawn")
        (item,) = plan_purge(ws, consent).to_delete
        assert item.path.name.startswith(".sh050.tmp-"), item


def test_what_a_run_is_writing_now_is_kept_and_said_so(studio, capsys):
    ws, jane, _ = studio
    out = ws.root / "shots" / "sh020.exr"
    out.parent.mkdir()
    with pytest.raises(ConsentError, match="was revoked .* while swap ran"):
        with gated(ws, "jane", "face_replace", "Film", command="swap", outputs=[out]):
            temp = temp_sibling(out, directory=True)
            code, text, _ = run_cli(capsys, "consent", "revoke", jane, "--reason", "withdrawn", "-W", ws.root)
            assert code == 0 and "(1 being written by a run still going: purge once it has stopped)" in \
                " ".join(text.split()), text
            (item,) = plan_purge(ws, jane).items
    assert item.path == temp and item.action == "keep" and "being written now" in item.why


def test_a_checkpoint_a_run_holds_is_kept(studio):
    from filelock import FileLock

    ws, jane, _ = studio
    out = ws.root / "shots" / "sh040"
    out.parent.mkdir()
    with gated(ws, "jane", "face_replace", "Film", command="swap", outputs=[out]):
        ck = checkpoint_sibling(out, "swap")
        ck.mkdir()
        record_owner(ck)
    revoke(ws, jane, "withdrawn")
    with FileLock(str(ck / "lock")):                 # a swap going on from it (on this machine or another)
        (item,) = plan_purge(ws, jane).items
    assert item.path == ck and item.action == "keep" and "being written now" in item.why
    (item,) = plan_purge(ws, jane).items
    assert item.action == "delete"


def test_a_checkpoint_records_whose_work_it_holds(tmp_path):
    ck = checkpoint_sibling(tmp_path / "model")
    ck.mkdir()
    record_owner(ck)
    assert ck.name == ".model.checkpoint" and owners_of(ck) is None          # outside a gate: nobody recorded
    with owned_by("c-1", "jane"):
        record_owner(ck)
        record_owner(ck)
    with owned_by("c-2", "jane"), owned_by("c-3", "stunt"):       # a swap: the double's and the plate's
        record_owner(ck)
    assert owners_of(ck) == [{"consent": "c-1", "actor": "jane"}, {"consent": "c-2", "actor": "jane"},
                             {"consent": "c-3", "actor": "stunt"}]


def test_a_checkpoint_of_unknown_owner_at_a_consents_output_is_taken_for_theirs(studio):
    ws, jane, bob = studio
    out = ws.root / "models" / "jane"
    out.parent.mkdir()
    with gated(ws, "jane", "face_replace", "Film", command="render train", outputs=[out]):
        pass
    old = checkpoint_sibling(out)                   # e.g. left by an older Doppel: no owners.json
    old.mkdir()
    other = checkpoint_sibling(out, "swap")
    other.mkdir()
    (out.parent / ".jane.mov.checkpoint").mkdir()  # the checkpoint of another output (jane.mov), not of jane
    with owned_by(bob, "bob"):
        record_owner(other)                         # bob's run made this one
    assert [u.leftover.path for u in unfinished_of(ws, jane)] == [old]
    assert other.is_dir() and [u.leftover.path for u in unfinished_of(ws, bob)] == []    # bob declared no output


def test_revoke_names_what_unfinished_runs_left(studio, capsys):
    ws, jane, _ = studio
    out = ws.root / "shots" / "sh030.png"
    out.parent.mkdir()
    _killed_run(ws, "jane", "Film", out)
    code, text, err = run_cli(capsys, "consent", "revoke", jane, "--reason", "withdrawn", "-W", ws.root)
    assert code == 0, err
    assert "also on disk: 2 temporary file(s) or checkpoint(s) of runs under it that did not finish" in text, text
    assert ".sh030.png.tmp-" in text and ".sh030.png.work-" in text

"""Two processes gating at once lose nothing; a process killed with SIGKILL mid-write leaves a
consistent index whose audit log verifies."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from assets import audit
from assets.actors import add_actor
from assets.consent import grant
from assets.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
PER_PROCESS = 500


def start_worker(ws, tag, n, *extra, barrier=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if barrier:
        env["GATE_WORKER_BARRIER"] = str(barrier)
    return subprocess.Popen([sys.executable, "-m", "tests.assets.gate_worker", str(ws.root), "jane-doe", "Dune", tag,
                             str(n), *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def setup_ws(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    add_actor(ws, "Jane Doe")
    grant(ws, "jane-doe", "fit", "Dune", "2099-12-31")
    return ws


def check_consistent(ws):
    """Every gated audit record has exactly its outputs in `assets`, and every asset its audit record."""
    with ws.read() as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assets = {r["id"]: r["audit_seq"] for r in con.execute("SELECT id, audit_seq FROM assets")}
    gated = [e for e in audit.entries(ws) if e.record["action"] == "gate.fit"]
    from_audit = {o["asset"]: e.seq for e in gated for o in e.record["outputs"]}
    assert from_audit == assets
    return gated


def test_two_processes_500_gated_actions_each(tmp_path):
    ws = setup_ws(tmp_path)
    go = tmp_path / "go"
    procs = [start_worker(ws, tag, PER_PROCESS, barrier=go) for tag in ("a", "b")]
    for p in procs:
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
    go.touch()  # both start their 500 actions together
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    gated = check_consistent(ws)
    assert len(gated) == 2 * PER_PROCESS
    by_tag = {t: sorted(int(Path(e.record["outputs"][0]["path"]).stem) for e in gated if e.record["command"] ==
                        f"worker-{t}") for t in "ab"}
    assert by_tag == {"a": list(range(PER_PROCESS)), "b": list(range(PER_PROCESS))}
    tags = [e.record["command"] for e in gated]
    assert tags[:PER_PROCESS] != ["worker-a"] * PER_PROCESS  # the two really interleaved
    report = audit.verify(ws)
    assert report.ok, report.problems
    assert report.records == 2 * PER_PROCESS + 2  # + actor.add and consent.grant
    # Each worker chained its outputs: output i was made from output i-1.
    with ws.read() as con:
        n_edges = con.execute("SELECT COUNT(*) FROM lineage").fetchone()[0]
    assert n_edges == 2 * (PER_PROCESS - 1)


def test_sigkill_mid_write_leaves_a_consistent_index(tmp_path):
    ws = setup_ws(tmp_path)
    for round_ in range(3):  # kill at three different moments
        p = start_worker(ws, f"k{round_}", 100_000)
        done = 0
        while done < 20 + 15 * round_:  # let it get well into its loop
            line = p.stdout.readline()
            assert line, p.stderr.read()
            done += 1
        time.sleep(0.003 * round_)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
        p.stderr.close()
        assert p.returncode == -signal.SIGKILL
        gated = check_consistent(ws)
        assert len([e for e in gated if e.record["command"] == f"worker-k{round_}"]) >= done
        assert audit.verify(ws).ok
    # Deterministic: killed inside its write transaction (audit record written, assets not yet, no commit).
    before = audit.verify(ws).records
    p = start_worker(ws, "mid", 5, "pause")
    assert p.stdout.readline().strip() == "IN_TX", p.stderr.read()
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    p.stdout.close()
    p.stderr.close()
    check_consistent(ws)
    report = audit.verify(ws)
    assert report.ok and report.records == before  # the half-done action left nothing
    # The workspace still takes new work after the kills (no stale lock).
    p = start_worker(ws, "after", 5)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert audit.verify(ws).records == before + 5
    r = subprocess.run([sys.executable, "-m", "doppel", "audit", "verify", "--workspace", str(ws.root)], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and f"audit log OK: {before + 5} records" in r.stdout, r.stderr


_FIRST_SIGNER = """
import sys, time
from pathlib import Path
from assets.workspace import Workspace
from assets.signing_keys import load_identity, trust_anchor
from doppel.media_disclosure import ensure_identity
ws = Workspace.open(sys.argv[1])
print("READY", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.005)
ensure_identity(ws)
load_identity(ws)
import hashlib
print(hashlib.sha256(trust_anchor(ws)).hexdigest(), flush=True)
"""


def test_commands_that_sign_first_on_a_new_workspace_make_one_identity(tmp_path):
    """Six processes sign for the first time at once: one identity is made, and each uses it (before: the ones
    that lost the race failed on a half-written key folder or a trust anchor the index had not recorded yet)."""
    ws = setup_ws(tmp_path)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _FIRST_SIGNER, str(ws.root), str(go)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    for p in procs:
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
    go.touch()
    anchors = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        anchors.append(out.strip())
    assert len(set(anchors)) == 1 and len(anchors[0]) == 64
    assert [e.record["action"] for e in audit.entries(ws)].count("keys.init") == 1

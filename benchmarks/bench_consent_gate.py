"""Consent gate and audit log: throughput, concurrency, crash safety, tamper detection.

    PYTHONPATH=. python benchmarks/bench_consent_gate.py

Prints: gated actions per second (1 process idle and with one core kept busy by a process the benchmark
starts and stops, benchmarks/_contention.py; 2 and 4 processes at once on one workspace, with the count
of audit records found and whether the chain verifies), kills with SIGKILL at random moments (index
consistent and chain verifies after each), `audit verify` time for a 10,000-record log, and whether an
edited, a deleted and a swapped record are each detected and named.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _contention  # first third-party import: Doppel's core before anything else (benchmarks/_contention.py)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assets import audit  # noqa: E402
from assets.actors import add_actor  # noqa: E402
from assets.consent import grant  # noqa: E402
from assets.workspace import Workspace  # noqa: E402


def new_ws(tmp: Path, name: str) -> Workspace:
    ws = Workspace.init(tmp / name)
    add_actor(ws, "Jane Doe")
    grant(ws, "jane-doe", "fit", "Dune", "2099-12-31")
    return ws


def worker(ws: Workspace, tag: str, n: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.assets.gate_worker", str(ws.root), "jane-doe", "Dune", tag,
                             str(n)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def gated_records(ws: Workspace) -> int:
    return sum(1 for e in audit.entries(ws) if e.record["action"] == "gate.fit")


def concurrent(tmp: Path, procs: int, per: int, label: str = "") -> None:
    """Wall time from the moment every worker has finished its first action to the last one's exit, so
    interpreter start-up and imports (about a second) are not counted; throughput over the rest."""
    ws = new_ws(tmp, f"c{procs}{label.replace(' ', '_')}")
    ps = [worker(ws, f"p{i}", per) for i in range(procs)]
    for p in ps:
        p.stdout.readline()  # first action done
    t0 = time.perf_counter()
    for p in ps:
        p.stdout.read()  # drain
        if p.wait() != 0:
            raise RuntimeError(p.stderr.read())
    wall = time.perf_counter() - t0
    found = gated_records(ws)
    ok = audit.verify(ws).ok
    print(f"{procs} process(es) x {per} gated actions at once{label}: {wall:.2f} s for the last {procs * (per - 1)} "
          f"or more, "
          f"{procs * (per - 1) / wall:.0f} actions/s; audit records found {found}/{procs * per}; chain verifies: {ok}")


def kills(tmp: Path, n_kills: int) -> None:
    ws = new_ws(tmp, "kill")
    rng = random.Random(0)
    survived = 0
    for k in range(n_kills):
        p = worker(ws, f"k{k}", 1_000_000)
        p.stdout.readline()  # it is running its loop
        time.sleep(rng.uniform(0.0, 0.5))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()
        p.stderr.close()
        with ws.read() as con:
            integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
            assets = {r[0] for r in con.execute("SELECT id FROM assets")}
        from_audit = {o["asset"] for e in audit.entries(ws) if e.record["action"] == "gate.fit"
                      for o in e.record["outputs"]}
        survived += integrity == "ok" and assets == from_audit and audit.verify(ws).ok
    print(f"SIGKILL at random moments (0-0.5 s into the loop): {survived}/{n_kills} kills left an index that passes "
          f"integrity_check, has every audit record's assets and no others, and verifies "
          f"({gated_records(ws)} actions committed in all)")


def verify_speed(tmp: Path, n: int) -> None:
    ws = Workspace.init(tmp / "big")
    with ws.write() as con:
        for i in range(n):
            audit.append(con, {"action": "bench", "detail": {"i": i, "pad": "x" * 200}})
    t0 = time.perf_counter()
    report = audit.verify(ws)
    print(f"audit verify of {n} records: {time.perf_counter() - t0:.3f} s (ok={report.ok})")


def tamper(tmp: Path) -> None:
    for case in ("edited", "deleted", "swapped"):
        ws = Workspace.init(tmp / f"t-{case}")
        for i in range(10):
            add_actor(ws, f"Actor {i}")
        con = sqlite3.connect(ws.index_path)
        con.execute("DROP TRIGGER audit_no_update")
        con.execute("DROP TRIGGER audit_no_delete")
        if case == "edited":
            rec = json.loads(con.execute("SELECT record FROM audit WHERE seq=6").fetchone()[0])
            rec["detail"]["name"] = "Someone Else"
            con.execute("UPDATE audit SET record=? WHERE seq=6", (audit.canonical_json(rec),))
        elif case == "deleted":
            con.execute("DELETE FROM audit WHERE seq=6")
        else:
            con.execute("UPDATE audit SET seq=-1 WHERE seq=6")
            con.execute("UPDATE audit SET seq=6 WHERE seq=7")
            con.execute("UPDATE audit SET seq=7 WHERE seq=-1")
        con.commit()
        con.close()
        report = audit.verify(ws)
        print(f"{case} record 6: detected={not report.ok}: " + " | ".join(p.message for p in report.problems))


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"load average {_contention.load_average()}")
        concurrent(tmp, 1, 500)
        with _contention.busy_core():
            concurrent(tmp, 1, 500, label=", one core busy")
        concurrent(tmp, 2, 500)
        concurrent(tmp, 4, 250)
        kills(tmp, 10)
        verify_speed(tmp, 10_000)
        tamper(tmp)


if __name__ == "__main__":
    main()

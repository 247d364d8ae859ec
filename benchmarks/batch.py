"""Batch on Ray benchmark (issue 18): many retarget + export tasks, serial vs `doppel batch` on local Ray, and
fault runs.

1. speed: N retargets of mocap clips (copies of the shared fixture clips, trimmed to --frames) onto the virtual
   double's rig + N exports (FBX for even clips, GLB for odd ones); a serial loop in one fresh process (the stage
   command functions called one after the other, as a user's script would) vs `run_batch` on an embedded local
   Ray in another fresh process, same run; Ray's overhead per task (driver round trip minus worker time, and a
   no-op task round trip).
2. faults, in a workspace with a real actor (consent for rig, retarget, export):
   a. a worker SIGKILLed during a task --kills times at random moments: every task done, every output present
      once, asset rows = tasks, `audit verify` passes, no duplicate audit records;
   b. the driver SIGKILLed half way, then `--resume`: completed tasks skipped, time of the resumed run;
   c. the actor's consent revoked mid-batch: her pending tasks not started (refused, audited), the running one
      registered and flagged, the other tasks (a skeleton target, no likeness) finish.

    PYTHONPATH=. python benchmarks/batch.py --quick          # 4 + 4 tasks, 120 frames, 2 kills: about 3-4 min
    PYTHONPATH=. python benchmarks/batch.py                  # 24 + 24 tasks, 240 frames, 5 kills (the issue)

The clips come from /work/shared/fixtures/mocap (or --clips-dir); the tests never use them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import _contention  # first third-party import: Doppel's core before torch (benchmarks/_contention.py)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path("/work/shared/fixtures/mocap")


def trim_bvh(src: Path, dst: Path, frames: int) -> None:
    """Copy a BVH keeping its first ``frames`` frames (text level: header unchanged, Frames: count fixed)."""
    lines = src.read_text().splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.strip().startswith("Frames:"))
    n = min(frames, int(lines[i].split()[1]))
    dst.write_text("\n".join([*lines[:i], f"Frames: {n}", lines[i + 1], *lines[i + 2:i + 2 + n]]) + "\n")


def make_clips(folder: Path, clips_dir: Path, n: int, frames: int, prefix: str = "clip") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(clips_dir.glob("*.bvh"))
    for i in range(n):
        trim_bvh(sources[i % len(sources)], folder / f"{prefix}_{i:02d}.bvh", frames)


def plan_text(rig: str, anims: str, exports: str, header: str = "", rig_job: bool = False) -> str:
    job = f"  - {{stage: rig, out: {rig}, preview_size: 64}}\n" if rig_job else ""
    return (f"{header}jobs:\n{job}"
            f'  - {{stage: retarget, clips: "mocap/*.bvh", rig: {rig}, out: "{anims}/{{clip}}", preview_size: 64}}\n'
            f'  - {{stage: export, anim: "{anims}/clip_?[02468]", rig: {rig}, formats: [fbx], no_texture: true, '
            f'out: "{exports}/{{anim}}.{{format}}"}}\n'
            f'  - {{stage: export, anim: "{anims}/clip_?[13579]", rig: {rig}, formats: [glb], no_texture: true, '
            f'out: "{exports}/{{anim}}.{{format}}"}}\n')


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0:3].__str__()


# --- children: one fresh process each ------------------------------------------------------------------------
def serial_child(plan: Path, threads: bool = False) -> dict:
    """Every task of the plan, one after the other in this process, through the stage commands themselves (torch's
    default threads, as a user's script gets; ``threads``: one thread, as a batch worker)."""
    from doppel.batch.dag import build_dag
    from doppel.batch.plan import load_plan
    from doppel.batch.stages import call_command
    from doppel.batch.worker import limit_threads

    if threads:
        limit_threads()
    t0 = time.perf_counter()
    dag = build_dag(load_plan(plan))
    per_stage: dict[str, list[float]] = {}
    for task in dag.tasks.values():
        t1 = time.perf_counter()
        module, _, name = task.spec.command.partition(":")
        fn = getattr(__import__(module, fromlist=[name]), name)
        call_command(fn, **task.spec.call(dict(task.values)))
        per_stage.setdefault(task.stage, []).append(time.perf_counter() - t1)
    return {"tasks": len(dag.tasks), "loop_s": time.perf_counter() - t0, "threads": torch_threads(),
            "per_stage_s": {k: [round(x, 2) for x in v] for k, v in per_stage.items()}}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def batch_child(plan: Path, workers: int | None, resume: bool = False) -> dict:
    """`run_batch` on an embedded local Ray in this process, plus a no-op round trip measurement."""
    from doppel.batch.dag import build_dag
    from doppel.batch.execute import BatchConfig, run_batch
    from doppel.batch.plan import load_plan
    from doppel.batch.report import driver_ms, overhead_ms, write_html_report

    t0 = time.perf_counter()
    res = run_batch(build_dag(load_plan(plan)), BatchConfig(workers=workers, resume=resume))
    write_html_report(res, plan, plan.parent / "batch_report.html")
    per_stage: dict[str, list[float]] = {}
    for st in res.states.values():
        if st.status == "done":
            per_stage.setdefault(st.task.stage, []).append(round(st.seconds, 2))
    return {"per_stage_s": per_stage, "tasks": len(res.states), "wall_s": time.perf_counter() - t0,
            "run_s": res.seconds, "ray_start_s": res.ray_start_seconds, "overhead_ms": overhead_ms(res),
            "overhead_mean_ms": overhead_ms(res, "mean"), "driver_ms": driver_ms(res),
            "status": {s: res.count(s) for s in ("done", "skipped", "failed", "refused", "flagged", "blocked")},
            "noop_ms": noop_round_trip_ms(workers)}


def noop_round_trip_ms(workers: int | None, n: int = 200) -> float:
    """Mean time per no-op Ray task (submit + get, `workers` in flight) on a fresh local Ray."""
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        f = ray.remote(lambda: None)
        ray.get([f.remote() for _ in range(8)])        # warm the workers
        t0 = time.perf_counter()
        ray.get([f.remote() for _ in range(n)])
        return 1e3 * (time.perf_counter() - t0) / n
    finally:
        ray.shutdown()


def run_child(*args: str, timeout: float = 3600) -> tuple[dict, float]:
    """Run this script as a child (``--child ...``); (its JSON result, wall seconds including Python start)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                         timeout=timeout, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), wall


# --- 1. speed ----------------------------------------------------------------------------------------------
def speed(work: Path, args) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rig = work / "rig"
    if not (rig / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "doppel", "rig", "--out", str(rig), "--preview-size", "64"], env=env,
                       check=True, capture_output=True)
    for mode in ("serial", "batch"):
        d = work / mode
        shutil.rmtree(d, ignore_errors=True)
        make_clips(d / "mocap", args.clips_dir, args.clips, args.frames)
        (d / "plan.yaml").write_text(plan_text(str(rig), "anims", "exports"))
    print(f"speed: {args.clips} retargets ({args.frames} frames) + {args.clips} exports (FBX/GLB), load "
          f"{loadavg()}", flush=True)
    ser, ser_wall = run_child("serial", str(work / "serial" / "plan.yaml"))
    print(f"  serial, one process ({ser['threads']} torch threads): {ser_wall:.1f} s wall (loop {ser['loop_s']:.1f} "
          f"s), load {loadavg()}; seconds per task: {ser['per_stage_s']}", flush=True)
    bat, bat_wall = run_child("batch", str(work / "batch" / "plan.yaml"), str(args.workers))
    print(f"  doppel batch, local Ray, {args.workers} workers: {bat_wall - 0:.1f} s wall incl. no-op measurement; "
          f"run_batch {bat['wall_s']:.1f} s (Ray start {bat['ray_start_s']:.1f} s, tasks {bat['run_s']:.1f} s), "
          f"{bat['status']}, load {loadavg()}; worker seconds per task: {bat['per_stage_s']}", flush=True)
    print(f"  speed-up (serial wall / run_batch incl. Ray start): {ser_wall / bat['wall_s']:.2f}x; "
          f"loop vs tasks only: {ser['loop_s'] / bat['run_s']:.2f}x", flush=True)
    print(f"  Ray overhead per task (driver round trip minus worker time, real tasks): {bat['overhead_ms']:.0f} ms "
          f"median, {bat['overhead_mean_ms']:.0f} ms mean (with each worker's start); the driver's own time per task "
          f"(gate, submission, registration) {bat['driver_ms']:.0f} ms; no-op task {bat['noop_ms']:.2f} ms",
          flush=True)


# --- 2. faults ----------------------------------------------------------------------------------------------
def studio(work: Path):
    from assets.actors import add_actor
    from assets.consent import grant
    from assets.workspace import Workspace

    shutil.rmtree(work / "studio", ignore_errors=True)
    ws = Workspace.init(work / "studio")
    add_actor(ws, "Jane Doe", actor_id="jane")
    consent = grant(ws, "jane", ["rig", "retarget", "export"], "Nightfall", dt.date.today() + dt.timedelta(days=30))
    return ws, consent


HEADER = "workspace: .\nproduction: Nightfall\nactor: jane\n"


def ray_workers_running() -> list[int]:
    """Pids of Ray worker processes running a batch task now (process title ``ray::run_task``)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "cmdline").read_bytes().startswith(b"ray::run_task"):
                    pids.append(int(p.name))
            except OSError:
                continue
    return pids


class Killer(threading.Thread):
    """SIGKILL a running batch worker ``n`` times at random moments (uniform 0.5-4 s apart)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        super().__init__(daemon=True)
        self.n, self.rng, self.kills, self.stop = n, random.Random(seed), [], threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        while len(self.kills) < self.n and not self.stop.wait(self.rng.uniform(0.5, 4.0)):
            pids = ray_workers_running()
            if pids:
                pid = self.rng.choice(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.kills.append((round(time.perf_counter() - t0, 1), pid))
                except ProcessLookupError:
                    pass


def check_workspace(ws, prefixes: tuple[str, ...], tasks: int) -> str:
    """Asset rows of the outputs under ``prefixes`` vs tasks, duplicates, audit verify, leftover temp files."""
    from assets.audit import entries, verify
    from assets.lineage import list_assets

    rows = [a for a in list_assets(ws) if a.path.startswith(prefixes)]
    paths = [a.path for a in rows]
    recs = [e for e in entries(ws) if e.record.get("action") == "gate.retarget" or
            e.record.get("action") in ("gate.export", "gate.rig")]
    rec_outs = [o["path"] for e in recs for o in e.record.get("outputs", []) if o["path"].startswith(prefixes)]
    litter = [p for pre in prefixes for p in (ws.root / pre).rglob("*") if ".tmp" in p.name or ".old-" in p.name]
    return (f"asset rows {len(rows)} for {tasks} tasks, duplicate paths {len(paths) - len(set(paths))}, audit "
            f"records for them {len(rec_outs)} (duplicates {len(rec_outs) - len(set(rec_outs))}), audit verify "
            f"{'ok' if verify(ws).ok else 'FAILED'}, leftover temporary files {len(litter)}")


def fault_kills(ws, args) -> None:
    from doppel.batch.dag import build_dag
    from doppel.batch.execute import BatchConfig, run_batch
    from doppel.batch.plan import load_plan

    make_clips(ws.root / "mocap", args.clips_dir, args.clips, args.frames)
    plan = ws.root / "plan_kills.yaml"
    plan.write_text(plan_text("rigs/jane", "anims_a", "exports_a", HEADER, rig_job=True))
    dag = build_dag(load_plan(plan))
    killer = Killer(args.kills)
    killer.start()
    res = run_batch(dag, BatchConfig(workers=args.workers, max_retries=args.kills + 1))
    killer.stop.set()
    outs = sorted(p.name for d in ("anims_a", "exports_a") for p in (ws.root / d).iterdir())
    print(f"  a. {len(killer.kills)} workers SIGKILLed at {[k[0] for k in killer.kills]} s: "
          f"{ {s: res.count(s) for s in ('done', 'skipped', 'failed')} } of {len(dag.tasks)} tasks in "
          f"{res.seconds:.1f} s; outputs {len(outs)} ({len(set(outs))} distinct, expected {len(dag.tasks) - 1}); "
          f"{check_workspace(ws, ('rigs/jane', 'anims_a', 'exports_a'), len(dag.tasks))}; load {loadavg()}",
          flush=True)


def fault_driver(ws, args) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    plan = ws.root / "plan_driver.yaml"
    plan.write_text(plan_text("rigs/jane", "anims_b", "exports_b", HEADER))
    records = ws.root / ".doppel_batch" / "tasks"
    before = len(list(records.glob("*.json")))
    n = 2 * args.clips
    proc = subprocess.Popen([sys.executable, "-m", "doppel", "batch", str(plan), "--workers", str(args.workers)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.perf_counter()
    while len(list(records.glob("*.json"))) - before < n // 2 and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.perf_counter() - t0
    time.sleep(2.0)
    orphans = [p for p in ray_workers_running()]
    done_before = len(list(records.glob("*.json"))) - before
    res, wall = run_child("batch", str(plan), str(args.workers), "resume")
    print(f"  b. driver SIGKILLed after {killed_at:.1f} s with {done_before}/{n} tasks recorded ({len(orphans)} "
          f"batch workers still running 2 s later); --resume: {res['status']} in {res['wall_s']:.1f} s "
          f"(Ray start {res['ray_start_s']:.1f} s, tasks {res['run_s']:.1f} s); "
          f"{check_workspace(ws, ('anims_b', 'exports_b'), n)}; load {loadavg()}", flush=True)


def fault_consent(ws, consent, args) -> None:
    from assets.audit import entries
    from assets.consent import revoke
    from doppel.batch.dag import build_dag
    from doppel.batch.execute import BatchConfig, run_batch
    from doppel.batch.plan import load_plan

    n = max(4, args.clips // 2)
    make_clips(ws.root / "mocap_c", args.clips_dir, n, args.frames)
    trim_bvh(sorted(args.clips_dir.glob("*.bvh"))[0], ws.root / "skeleton.bvh", 2)
    plan = ws.root / "plan_consent.yaml"
    plan.write_text("workspace: .\nproduction: Nightfall\njobs:\n"
                    '  - {stage: retarget, clips: "mocap_c/*.bvh", rig: rigs/jane, out: "anims_c/jane_{clip}", '
                    "preview_size: 64}\n"
                    '  - {stage: retarget, clips: "mocap_c/*.bvh", rig: skeleton.bvh, out: "anims_c/skel_{clip}", '
                    "preview_size: 64}\n")
    refused0 = sum(e.record.get("action") == "gate.refused" for e in entries(ws))
    state = {"revoked": None}

    def revoke_after_first(result) -> None:
        jane = [s for s in result.states.values() if "jane_" in s.task.id]
        if state["revoked"] is None and any(s.status == "done" for s in jane) and \
                any(s.status == "running" for s in jane):
            revoke(ws, consent.id, "withdrawn by the actor (benchmark)")
            state["revoked"] = time.perf_counter()

    res = run_batch(build_dag(load_plan(plan)), BatchConfig(workers=args.workers), progress=revoke_after_first)
    jane = {s: sum(st.status == s for st in res.states.values() if "jane_" in st.task.id)
            for s in ("done", "flagged", "refused")}
    other = sum(st.status == "done" for st in res.states.values() if "skel_" in st.task.id)
    refused = sum(e.record.get("action") == "gate.refused" for e in entries(ws)) - refused0
    print(f"  c. consent revoked mid-batch: Jane's {n} tasks {jane}, {refused} refusals audited; the other "
          f"{other}/{n} tasks done; load {loadavg()}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="4 + 4 tasks, 120 frames, 2 kills")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clips-dir", type=Path, default=FIXTURES)
    ap.add_argument("--work", type=Path, default=Path("/tmp/doppel_bench_batch"))
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-faults", action="store_true")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, plan, *rest = args.child
        result = serial_child(Path(plan), "one-thread" in rest) if kind == "serial" else \
            batch_child(Path(plan), int(rest[0]), resume="resume" in rest)
        print(json.dumps(result))
        return
    if args.quick:
        args.clips, args.frames, args.kills = 4, 120, 2
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{_contention.machine_line()} | date {dt.date.today()}")
    t0 = time.perf_counter()
    if not args.skip_speed:
        speed(args.work, args)
    if not args.skip_faults:
        ws, consent = studio(args.work)
        print(f"faults (workspace {ws.root}, actor jane):", flush=True)
        fault_kills(ws, args)
        fault_driver(ws, args)
        fault_consent(ws, consent, args)
    print(f"benchmark total {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()

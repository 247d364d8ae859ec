"""`doppel render train --members N`: N neural doubles of one capture trained at once, one process (one CPU core)
each, with their own seeds, kept in one model folder and drawn as the mean of their renders
(``neural_render.ensemble``).

Member 0 trains in this process (its progress is the command's progress bar) into the model folder itself; member
k > 0 trains in a spawned process into ``members/k`` (``render_stage.member_dir``) with its own checkpoint folder,
so ``--resume`` continues every member. When all are done, the folder's config.json lists the members and the
held-out views are scored again with the ensemble: its PSNR is the model's ``best_holdout_psnr``.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import queue as queue_mod
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from doppel.render_stage import (
    TrainRequest,
    holdout_preview,
    holdout_views,
    member_dir,
    train_session,
    write_model_manifest,
)

log = logging.getLogger(__name__)

__all__ = ["train_ensemble", "check_counts", "MAX_MEMBERS", "MAX_SNAPSHOTS"]

MAX_MEMBERS = 8
MAX_SNAPSHOTS = 8


def check_counts(members: int, snapshots: int, holdout: list[str]) -> None:
    """ValueError (one line) unless 1 <= members <= MAX_MEMBERS and 1 <= snapshots <= MAX_SNAPSHOTS, with held-out
    cameras when snapshots > 1 (the states are chosen by their held-out PSNR)."""
    if not 1 <= members <= MAX_MEMBERS:
        raise ValueError(f"--members must be between 1 and {MAX_MEMBERS}, got {members}")
    if not 1 <= snapshots <= MAX_SNAPSHOTS:
        raise ValueError(f"--snapshots must be between 1 and {MAX_SNAPSHOTS}, got {snapshots}")
    if snapshots > 1 and not holdout:
        raise ValueError("--snapshots needs --holdout: the states are chosen by their held-out PSNR")


def _member_main(req: TrainRequest, tmp: Path, params: dict | None, q) -> None:
    """A spawned process: train member ``req.member`` into ``tmp`` on one thread, reporting on ``q``."""
    import torch

    torch.set_num_threads(1)
    try:
        s = train_session(req, tmp, lambda step, total, loss, psnr: q.put(("progress", req.member, step, psnr)),
                          None, params)
        q.put(("done", req.member, s))
    except Exception as e:          # noqa: BLE001 - reported to the parent as one line
        q.put(("error", req.member, f"{type(e).__name__}: {e}"))


def _drain(q, state: dict, block: float = 0.0) -> bool:
    """Read the members' reports into state {member: report}; True when something arrived."""
    got = False
    while True:
        try:
            msg = q.get(timeout=block) if block and not got else q.get_nowait()
        except queue_mod.Empty:
            return got
        got = True
        kind, k = msg[0], msg[1]
        state[k] = {"kind": kind, **({"step": msg[2], "psnr": msg[3]} if kind == "progress" else {"value": msg[2]})}


def _others_line(state: dict) -> str:
    parts = []
    for k in sorted(state):
        r = state[k]
        if r["kind"] == "progress":
            held = "" if r["psnr"] != r["psnr"] else f" {r['psnr']:.2f} dB"
            parts.append(f"member {k}: step {r['step']}{held}")
        else:
            parts.append(f"member {k}: {r['kind']}")
    return "; ".join(parts)


def _finished(state: dict, k: int) -> bool:
    return state.get(k, {}).get("kind") in ("done", "error")


def _wait(procs: dict, q, state: dict, say: Callable[[str], None]) -> dict:
    """Wait for every spawned member; {member: summary}. RuntimeError naming the member that failed."""
    while not all(_finished(state, k) for k in procs):
        if _drain(q, state, block=1.0):
            say(f"waiting for the other members ({_others_line(state)})")
        for k, p in procs.items():
            if not p.is_alive() and not _finished(state, k):
                _drain(q, state, block=1.0)       # its last report may still be in the queue
                if not _finished(state, k):
                    raise RuntimeError(f"ensemble member {k}: its process ended (exit code {p.exitcode}) without "
                                       "a result")
    failed = {k: state[k]["value"] for k in procs if state[k]["kind"] == "error"}
    if failed:
        k = min(failed)
        raise RuntimeError(f"ensemble member {k} failed: {failed[k]}")
    return {k: state[k]["value"] for k in procs}


def train_ensemble(req: TrainRequest, tmp: Path, progress: Callable[[int, int, float, float], None] | None = None,
                   status: Callable[[str], None] | None = None, params: dict | None = None) -> dict:
    """Train ``req.members`` members (``train_session`` each; one is ``train_session`` itself) into the staging
    folder ``tmp``; returns the summary written to the manifest (member 0's, with ``members`` and the ensemble's
    ``best_holdout_psnr``)."""
    check_counts(req.members, int((req.options or {}).get("snapshots", 1)), req.holdout)
    if req.members == 1:
        return train_session(req, tmp, progress, status, params)
    if (req.options or {}).get("refine_mesh"):
        raise ValueError("--members > 1 with refine_mesh: each member would learn its own surface; train one member")
    say = status or (lambda s: None)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs, state = {}, {}
    try:
        for k in range(1, req.members):
            procs[k] = ctx.Process(target=_member_main, args=(replace(req, member=k), member_dir(tmp, k), params, q),
                                   name=f"doppel-member-{k}")
            procs[k].start()

        def member0_progress(step: int, total: int, loss: float, psnr: float) -> None:
            if _drain(q, state):
                say(f"training ({_others_line(state)})")
            if progress:
                progress(step, total, loss, psnr)

        first = train_session(replace(req, member=0), tmp, member0_progress, status, params)
        others = _wait(procs, q, state, say)
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
            p.join(timeout=10)
    say("scoring the ensemble on the held-out views")
    return _assemble(req, tmp, first, others, params)


def _assemble(req: TrainRequest, tmp: Path, first: dict, others: dict, params: dict | None) -> dict:
    """List the members in member 0's config.json, score the ensemble, rewrite the preview and the manifest."""
    from core.storage import atomic_write_json
    from neural_render.ensemble import MEMBERS_KEY, NeuralEnsemble, member_folders
    from neural_render.neural_double import load_model
    from neural_render.training import holdout_psnr

    cfg_path = tmp / "config.json"
    config = json.loads(cfg_path.read_text())
    names = list(config.get(MEMBERS_KEY) or []) + [member_dir(Path("."), k).as_posix() for k in sorted(others)]
    drawn = [f for k in range(req.members) for f in member_folders(member_dir(tmp, k))]   # snapshots included
    model = NeuralEnsemble([load_model(f)[0] for f in drawn]).eval()
    member_psnr = [first["best_holdout_psnr"]] + [others[k]["best_holdout_psnr"] for k in sorted(others)]
    summary = {**first, "members": req.members, "member_holdout_psnr": member_psnr,
               "divergences": [{**d, "member": k} for k, s in [(0, first), *sorted(others.items())]
                               for d in s.get("divergences", [])]}
    outputs = {"model": "model.safetensors", "config": "config.json", "history": "history.json"}
    for n in (f.relative_to(tmp).as_posix() for f in drawn[1:]):
        outputs.update({f"{n}/model": f"{n}/model.safetensors", f"{n}/config": f"{n}/config.json"})
    if req.holdout:
        views = holdout_views(req, model)
        psnr = holdout_psnr(model, views, "cpu", composite=True)
        summary["best_holdout_psnr"] = round(psnr, 3) if math.isfinite(psnr) else None
        holdout_preview(tmp / "holdout.png", model, views)
        outputs["holdout"] = "holdout.png"
    atomic_write_json(cfg_path, {**config, MEMBERS_KEY: names, "summary": summary})
    write_model_manifest(req, tmp, {**first, **dict(params or {})}, summary, outputs)
    log.info("ensemble of %d: held-out PSNR %s (members %s)", req.members, summary["best_holdout_psnr"], member_psnr)
    return summary

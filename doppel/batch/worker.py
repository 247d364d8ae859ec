"""What runs inside a Ray worker for one task, and the task records that make re-runs and retries cheap.

A task runs its stage's `doppel` command function under the driver's authorisation (the command's consent gate is
pre-authorised: nothing here opens the workspace index). The command writes its outputs atomically (stage folders
swapped in whole, files renamed into place). Then the worker writes the task's *record*
(``ROOT/.doppel_batch/tasks/ID.json``): the task's key (SHA-256 of the stage, its options and the content hashes of
its inputs) and the data hash of each output. A record whose key matches and whose outputs still have their hashes
means the outputs are current: a retried task (after its worker was killed) and a ``--resume`` run skip it.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from core.storage import atomic_write_json, content_key, sha256_bytes

log = logging.getLogger(__name__)

RECORD_SCHEMA = 1
STATE_DIR = ".doppel_batch"
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


@dataclass(frozen=True)
class TaskResult:
    """What a worker sends back to the driver."""

    task_id: str
    skipped: bool                                  # outputs were current: no work done
    outputs: tuple[tuple[str, str, tuple[str, ...] | None], ...]   # (path, kind, inputs or None) per output
    seconds: float                                 # wall time in the worker
    pid: int                                       # worker process id
    host: str                                      # worker machine


def record_path(state_dir: str | os.PathLike, task_id: str) -> Path:
    """Where a task's record lives: one JSON file per task, named by a hash of its id."""
    return Path(state_dir) / "tasks" / f"{sha256_bytes(task_id.encode())[:24]}.json"


def task_key(task) -> str:
    """SHA-256 of the task's stage, option values and the content hash of every input path."""
    from assets.hashing import path_sha256

    ins = {f.name: path_sha256(task.values[f.name]) for f in task.spec.inputs if task.values.get(f.name)}
    return content_key("doppel-batch-task", RECORD_SCHEMA, task.stage, task.values, ins)


def output_hash(path: str | os.PathLike) -> str:
    """The data hash of an output: a file's SHA-256, a folder's tree hash without manifest.json (the driver
    signs the manifest after the task, which must not make the output look changed)."""
    from assets.hashing import digest

    return digest(path).data_sha256


def current_record(task, state_dir: str | os.PathLike, run_id: str | None = None) -> dict | None:
    """The task's record when its outputs are current (same key; every output there with its hash), else None.
    ``run_id``: only a record written by that batch run counts (a retry inside one run without --resume)."""
    import json

    path = record_path(state_dir, task.id)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        if rec.get("schema") != RECORD_SCHEMA or rec.get("task") != task.id:
            return None
        if run_id is not None and rec.get("run") != run_id:
            return None
        if rec.get("key") != task_key(task):
            return None
        for o in rec["outputs"]:
            if not Path(o["path"]).exists() or output_hash(o["path"]) != o["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rec


def write_record(task, state_dir: str | os.PathLike, run_id: str, outputs, key: str, seconds: float) -> None:
    """Atomically write the task's record (after its outputs are committed)."""
    path = record_path(state_dir, task.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"schema": RECORD_SCHEMA, "task": task.id, "run": run_id, "key": key,
                             "seconds": round(seconds, 3), "outputs": [
                                 {"path": p, "kind": k, "inputs": list(i) if i is not None else None,
                                  "sha256": output_hash(p)} for p, k, i in outputs]})


def outputs_of(rec: dict) -> tuple:
    """A record's outputs as TaskResult.outputs."""
    return tuple((o["path"], o["kind"], tuple(o["inputs"]) if o["inputs"] is not None else None)
                 for o in rec["outputs"])


def remove_litter(output: str | os.PathLike) -> list[Path]:
    """Remove the temporary files an earlier, killed attempt at the same output file left beside it (an exporter's
    ``core.stage_folders.temp_sibling``, on whichever host it ran); returns them. Called once this task's output is
    committed: within a batch an output path belongs to one task, so no live writer owns them. (A stage folder's
    temporary folders are removed by `core.stage_folders.clean_stale` when the stage runs.)"""
    from core.stage_folders import temp_files_of

    out = Path(output)
    if not out.is_file():
        return []
    removed = []
    for p in temp_files_of(out):
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def limit_threads() -> None:
    """One CPU per task: torch, OpenMP, MKL and numba use one thread (the environment variables are also set
    for the worker process by the driver, before torch loads)."""
    for k, v in THREAD_ENV.items():
        os.environ.setdefault(k, v)
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def run_task(task, auth, gate_inputs, state_dir: str, run_id: str, resume: bool, more_auths=(),
             grant=None, workspace: str | None = None) -> TaskResult:
    """Run one task in this process (a Ray worker): skip it when its record says its outputs are current (a
    retry, or --resume), else run the stage's command under ``auth`` (and ``more_auths``: (authorisation,
    inputs) of its further gates; ``grant``: the driver's `assets.disclosure.DisclosureGrant`, under which its
    imagery is signed and marked) and record the outputs. ``workspace``: the driver's workspace folder; when it is
    shared with a group, this worker's outputs are the group's (a worker never opens the index, and one on another
    machine of a cluster inherits nothing from the driver)."""
    from core.group_sharing import adopt_group_umask
    from doppel.batch.stages import call_command
    from doppel.consent_gate import preauthorized

    t0 = time.perf_counter()
    limit_threads()
    if workspace is not None:
        adopt_group_umask(workspace)
    rec = current_record(task, state_dir, None if resume else run_id)
    if rec is not None:
        return TaskResult(task.id, True, outputs_of(rec), time.perf_counter() - t0, os.getpid(), socket.gethostname())
    key = task_key(task)
    module, _, name = task.spec.command.partition(":")
    fn = getattr(importlib.import_module(module), name)
    with preauthorized(auth, gate_inputs, more_auths, grant) as runs:
        call_command(fn, **task.spec.call(dict(task.values)))
    outputs = tuple(dict.fromkeys((str(p), kind, tuple(str(i) for i in ins) if ins is not None else None)
                                  for run in runs for p, kind, ins in run.outputs))   # one per output: gates share
    if not outputs:
        raise RuntimeError(f"{task.id}: the {task.stage} command reported no output")
    seconds = time.perf_counter() - t0
    write_record(task, state_dir, run_id, outputs, key, seconds)
    for path, _, _ in outputs:
        remove_litter(path)
    return TaskResult(task.id, False, outputs, seconds, os.getpid(), socket.gethostname())

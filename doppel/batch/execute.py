"""Run a batch DAG on Ray: the driver gates, submits, collects and registers; workers only compute.

* Ray runs embedded and local by default (``ray.init()`` in this process, nothing to install or start); with an
  address, on an existing cluster. Every task asks for 1 CPU (a GPU stage for 1 GPU when the cluster has one);
  its worker limits torch/OpenMP/MKL to one thread.
* The driver keeps at most ``slots`` tasks in flight (the CPUs Ray has, or ``--workers``) and submits a task only
  when every task it reads from has finished and been registered. Just before submitting it runs the consent gate
  (`doppel.consent_gate.gate_from_cli`, the same check as the stage's command: refusals are audited), so a consent
  revoked mid-batch stops that actor's pending tasks; the tasks already running finish and are registered and
  flagged, as the gate does for a single command.
* Workers never open the workspace index: when a task ends, the driver registers its outputs, lineage and the
  audit record (`GatedRun.finish`). A worker killed mid-task is retried by Ray (``max_retries``); its outputs are
  written atomically and registered once, by the driver, when the one result arrives. A retry (and ``--resume``)
  skips a task whose record says its outputs are current (`doppel.batch.worker`); a current output that is not in
  the index yet (the driver was killed before registering it) is registered, never twice.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DoppelError
from doppel.batch.dag import Dag, Task
from doppel.batch.worker import STATE_DIR, THREAD_ENV, TaskResult, current_record, outputs_of, run_task

log = logging.getLogger(__name__)

FINAL = ("done", "skipped", "failed", "refused", "flagged", "blocked")
OK = ("done", "skipped")


class BatchError(DoppelError):
    """The batch cannot start (Ray unreachable, a bad address); one line."""


@dataclass(frozen=True)
class BatchConfig:
    """How a batch runs."""

    address: str | None = None     # None: embedded local Ray; "auto", "HOST:PORT" or "ray://HOST:PORT": a cluster
    workers: int | None = None     # tasks in flight at most (local: also the CPUs Ray uses); default: Ray's CPUs
    resume: bool = False           # skip tasks whose outputs are current (their records match)
    max_retries: int = 3           # times Ray re-runs a task whose worker died (SIGKILL, OOM)


@dataclass
class TaskState:
    """Where one task stands."""

    task: Task
    status: str = "pending"        # pending, running, done, skipped, failed, refused, flagged, blocked
    message: str = ""              # why it failed / was refused / was blocked / was flagged
    seconds: float = 0.0           # worker wall time
    host: str = ""                 # machine that ran it
    submitted: float = 0.0         # driver clock when submitted (perf_counter)
    latency: float = 0.0           # submit -> result on the driver, seconds
    driver_seconds: float = 0.0    # the driver's own time for it: consent gate, submission, registration


@dataclass
class BatchResult:
    """The outcome of a batch run."""

    run_id: str
    states: dict[str, TaskState]
    seconds: float = 0.0           # wall time of the run (after Ray started)
    ray_start_seconds: float = 0.0
    ray: str = ""                  # where it ran ("local Ray, 2 CPUs", "cluster at ...")
    slots: int = 0
    events: list[str] = field(default_factory=list)   # notable moments (consent refusals, ...)

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.states.values())

    @property
    def ok(self) -> bool:
        return all(s.status in OK for s in self.states.values())


# --- Ray ---------------------------------------------------------------------------------------------------
def _check_reachable(address: str) -> None:
    """BatchError unless ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts a TCP connection within 5 s."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise BatchError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as e:
        raise BatchError(f"--address {address}: cannot reach the Ray cluster ({e.strerror or e}); nothing was "
                         "run. Start it with `ray start --head` there, or leave --address out to run locally"
                         ) from None


def start_ray(cfg: BatchConfig) -> tuple[bool, str, float]:
    """Connect to (or start) Ray; (started_here, description, seconds). BatchError when it cannot."""
    import ray

    t0 = time.perf_counter()
    if ray.is_initialized():
        return False, "Ray already initialised in this process", 0.0
    for k, v in THREAD_ENV.items():          # local workers inherit the driver's environment
        os.environ.setdefault(k, v)
    kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
          "namespace": "doppel-batch"}
    if cfg.address is None:
        _token_without_home()
        ray.init(num_cpus=cfg.workers, **kw)
        where = "local Ray (embedded)"
    else:
        if cfg.address != "auto":
            _check_reachable(cfg.address)
        if cfg.address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
            raise BatchError(f"--address {cfg.address}: ray:// needs Ray Client (pip install 'ray[client]', which "
                             "brings grpcio); or run the driver on a cluster node with --address HOST:PORT or auto")
        from doppel.batch.cluster_checks import ClusterError, check_local_session, connect

        try:
            check_local_session(cfg.address)
            connect(ray, cfg.address, runtime_env={"env_vars": dict(THREAD_ENV)}, **kw)
        except ClusterError as e:
            raise BatchError(str(e)) from None
        where = f"Ray cluster at {cfg.address}"
    return True, where, time.perf_counter() - t0


def _token_without_home() -> None:
    """An embedded Ray cluster's authentication token for a user who cannot write ~/.ray (a render node's account
    with no writable home): Ray writes a new cluster's token to ~/.ray/auth_token, and `doppel batch` failed there
    with "Permission denied". The token then lives in this process's environment only (RAY_AUTH_TOKEN, read by
    Ray before that file; the local workers inherit it); token authentication stays on. A token or mode the user
    set is left alone."""
    import secrets

    from core.runtime import writable_folder

    if any(os.environ.get(v) for v in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE")):
        return
    if not writable_folder(Path.home() / ".ray"):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def _resources() -> tuple[int, bool]:
    import ray

    res = ray.cluster_resources()
    return max(1, int(res.get("CPU", 1))), res.get("GPU", 0) > 0


# --- the driver --------------------------------------------------------------------------------------------
@dataclass
class _Driver:
    dag: Dag
    cfg: BatchConfig
    result: BatchResult
    progress: Callable[[BatchResult], None] | None
    has_gpu: bool = False
    state_dir: str = ""
    ready: list[str] = field(default_factory=list)
    in_flight: dict = field(default_factory=dict)       # ObjectRef -> (task id, GatedRun)
    extra_runs: dict = field(default_factory=dict)      # task id -> [(GatedRun, ExtraGate)] of its extra gates

    def __post_init__(self) -> None:
        self.state_dir = str(self.dag.plan.root / STATE_DIR)
        self.dependents = self.dag.dependents()
        self.ready = [t.id for t in self.dag.tasks.values() if not t.deps]

    def state(self, tid: str) -> TaskState:
        return self.result.states[tid]

    def conclude(self, tid: str, status: str, message: str = "") -> None:
        """Final status of a task; on anything but success its dependents are blocked (transitively)."""
        st = self.state(tid)
        st.status, st.message = status, message
        if status in OK:
            for d in self.dependents[tid]:
                if all(self.state(x).status in OK for x in self.dag.tasks[d].deps):
                    self.ready.append(d)
            return
        todo = list(self.dependents[tid])
        while todo:
            d = todo.pop()
            if self.state(d).status == "pending":
                self.state(d).status, self.state(d).message = "blocked", f"needs {tid} ({status})"
                todo += self.dependents[d]

    def run(self) -> None:
        import ray

        slots = self.result.slots
        while self.ready or self.in_flight:
            while self.ready and len(self.in_flight) < slots:
                task = self.dag.tasks[self.ready.pop(0)]
                t0 = time.perf_counter()
                self.submit(task)
                self.state(task.id).driver_seconds += time.perf_counter() - t0
            if self.progress:
                self.progress(self.result)
            if not self.in_flight:
                continue
            done, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=0.5)
            for ref in done:
                t0 = time.perf_counter()
                tid = self.collect(ref)
                self.state(tid).driver_seconds += time.perf_counter() - t0
        if self.progress:
            self.progress(self.result)

    def open_gate(self, task: Task):
        """The consent gates for ``task`` (as its command would run them: its extra gates first, then its own);
        (run, None) or (None, (status, message)). The extra gates' runs wait in ``extra_runs``."""
        from assets.consent import ConsentError
        from doppel.consent_gate import gate_from_cli

        runs = []
        try:
            extras = task.spec.extra_gates(task.values) if task.spec.extra_gates else ()
            gates = [(x.spec, task.values.get(x.actor_option), f"batch {x.command}", x.actor_option) for x in extras]
            gates.append((task.spec.gate(task.values), task.actor, f"batch {task.stage}", "actor"))
            outputs = [task.out, *(task.spec.side_outputs(task.out) if task.spec.side_outputs else ())]
            for spec, actor, command, option in gates:
                cm = gate_from_cli(self.dag.plan.workspace, actor, task.production, task.spec.use, command=command,
                                   inputs=spec.inputs, likeness=spec.likeness, evidence=spec.evidence,
                                   actor_option=option, outputs=outputs)
                runs.append(cm.__enter__())   # the registration (cm's exit) is run.finish(), called on success
        except ConsentError as e:
            self.result.events.append(f"{task.id}: refused: {e}")
            return None, ("refused", str(e))
        except (DoppelError, ValueError, OSError) as e:
            return None, ("failed", str(e))
        self.extra_runs[task.id] = list(zip(runs[:-1], extras, strict=True))
        return runs[-1], None

    def submit(self, task: Task) -> None:
        """Gate, then either skip (--resume, outputs current and registered), register (current, not yet
        registered) or send the task to Ray."""
        st = self.state(task.id)
        if task.spec.resolve:            # before the record's key is computed: the values it fills are in the key
            try:
                task.spec.resolve(task.values, self.dag.plan.workspace)
            except (DoppelError, ValueError, OSError) as e:
                self.conclude(task.id, "failed", str(e))
                return
        rec = current_record(task, self.state_dir) if self.cfg.resume else None
        if rec is not None and _registered(self.dag.plan.workspace, rec):
            self.conclude(task.id, "skipped", "outputs current (resume)")
            return
        run, refusal = self.open_gate(task)
        if refusal:
            self.conclude(task.id, *refusal)
            return
        if rec is not None:
            self.register(task, run, TaskResult(task.id, True, outputs_of(rec), 0.0, os.getpid(), ""))
            return
        import ray

        g = task.spec.gate(task.values)
        opts = {"num_cpus": 1, "max_retries": self.cfg.max_retries, "retry_exceptions": False}
        if task.spec.gpu and self.has_gpu:
            opts["num_gpus"] = 1
        more = [(r.auth, list(x.spec.inputs)) for r, x in self.extra_runs.get(task.id, [])]
        try:
            grant = self.disclosure_grant(task, run)
        except DoppelError as e:         # an expired or unreadable signing identity: nothing undisclosed is made
            self.conclude(task.id, "failed", str(e))
            return
        ref = _remote(ray).options(**opts).remote(task, run.auth, list(g.inputs), self.state_dir,
                                                   self.result.run_id, self.cfg.resume, more, grant,
                                                   str(run.ws.root) if run.ws is not None else None)
        self.in_flight[ref] = (task.id, run)
        st.status, st.submitted = "running", time.perf_counter()

    def disclosure_grant(self, task: Task, run):
        """The task's `assets.disclosure.DisclosureGrant` (its ``disclosure.mark`` audit record appended now, naming
        the gate's actor and consent, and a swap's real plate performer): the worker signs and marks its imagery
        under it as the command does in a workspace. None outside a workspace, and for a stage that writes no imagery
        or export (`StageSpec.discloses`)."""
        if run.ws is None or not task.spec.discloses:
            return None
        from assets.disclosure import grant_disclosure
        from doppel.media_disclosure import ensure_identity

        ensure_identity(run.ws)
        a = run.auth
        record = {"command": f"batch {task.stage}", "actor": a.actor_id, "consent": a.consent_id,
                  "production": a.production, "use": a.use.value, "kind": "batch task", "file": task.id,
                  "ingredients": []}
        for extra, _ in self.extra_runs.get(task.id, []):
            if not extra.auth.virtual:
                record.update(performer=extra.auth.actor_id, performer_consent=extra.auth.consent_id)
        return grant_disclosure(run.ws, record)

    def collect(self, ref) -> str:
        """Take a finished task's result (or error) and register its outputs; returns its id."""
        import ray

        tid, run = self.in_flight.pop(ref)
        st = self.state(tid)
        st.latency = time.perf_counter() - st.submitted
        try:
            res: TaskResult = ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = e.cause if getattr(e, "cause", None) is not None else e
            self.conclude(tid, "failed", _one_line(cause))
            return tid
        except ray.exceptions.RayError as e:       # worker died more than max_retries times, ...
            self.conclude(tid, "failed", f"{type(e).__name__}: {_one_line(e)}")
            return tid
        st.seconds, st.host = res.seconds, res.host
        self.register(self.dag.tasks[tid], run, res)
        return tid

    def register(self, task: Task, run, res: TaskResult) -> None:
        """Register the outputs (lineage, audit) unless they already are (a skipped task's, from an earlier run)."""
        from assets.consent import ConsentError

        rec = {"outputs": [{"path": p} for p, _, _ in res.outputs]}
        if res.skipped and _registered(self.dag.plan.workspace, rec):
            self.conclude(task.id, "skipped", "outputs current")
            return
        for path, kind, ins in res.outputs:
            run.add_output(path, kind, ins)
        try:
            for extra, gate in self.extra_runs.pop(task.id, []):
                own = gate.output_kind is None or extra.auth.actor_id != run.auth.actor_id
                if own and not extra.auth.virtual:   # a real plate or take performer's too
                    for path, kind, ins in res.outputs:
                        extra.add_output(path, gate.output_kind or kind, ins)
                extra.finish()
            run.finish()
        except ConsentError as e:
            self.result.events.append(f"{task.id}: flagged: {e}")
            self.conclude(task.id, "flagged", str(e))
            return
        self.conclude(task.id, "skipped" if res.skipped else "done",
                      "outputs current; registered now" if res.skipped else "")


_REMOTE = {}


def _remote(ray):
    """The Ray remote function of `run_task` (made once per process)."""
    if "fn" not in _REMOTE:
        _REMOTE["fn"] = ray.remote(run_task)
    return _REMOTE["fn"]


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1] if text else ''}" if not isinstance(e, DoppelError | ValueError |
                                                                                 OSError) else " ".join(text[:1])


def _registered(workspace: Path | None, rec: dict) -> bool:
    """Is every output of ``rec`` registered in the workspace with its current content? (True without one.)"""
    from assets.hashing import path_sha256
    from assets.lineage import workspace_relative
    from doppel.consent_gate import find_workspace

    ws = find_workspace(workspace)
    if ws is None:
        return True
    with ws.read() as con:
        for o in rec["outputs"]:
            row = con.execute("SELECT 1 FROM assets WHERE path=? AND sha256=?",
                              (workspace_relative(ws, o["path"]), path_sha256(o["path"]))).fetchone()
            if row is None:
                return False
    return True


def _all_current(dag: Dag) -> bool:
    """Does every task have a matching record, with its outputs current and registered? (--resume)"""
    state_dir = dag.plan.root / STATE_DIR
    for task in dag.tasks.values():
        rec = current_record(task, state_dir)
        if rec is None or not _registered(dag.plan.workspace, rec):
            return False
    return True


def run_batch(dag: Dag, cfg: BatchConfig, progress: Callable[[BatchResult], None] | None = None) -> BatchResult:
    """Run every task of ``dag`` on Ray (see the module docstring); returns each task's state. Starts Ray when
    it is not running in this process (and shuts it down after); BatchError when it cannot be reached."""
    import ray

    result = BatchResult(uuid.uuid4().hex[:12], {tid: TaskState(t) for tid, t in dag.tasks.items()})
    if cfg.resume and _all_current(dag):        # nothing to run: no need for Ray at all
        for st in result.states.values():
            st.status, st.message = "skipped", "outputs current (resume)"
        result.ray = "Ray not started (every task's outputs are current)"
        if progress:
            progress(result)
        return result
    started, result.ray, result.ray_start_seconds = start_ray(cfg)
    try:
        cpus, gpu = _resources()
        result.slots = cfg.workers or cpus
        result.ray += f", {cpus} CPUs{', GPU' if gpu else ''}, {result.slots} tasks in flight at most"
        driver = _Driver(dag, cfg, result, progress, has_gpu=gpu)
        t0 = time.perf_counter()
        try:
            driver.run()
        finally:
            for ref, (tid, _) in list(driver.in_flight.items()):     # interrupted: cancel what still runs
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
                result.states[tid].status = "failed"
                result.states[tid].message = "interrupted"
        result.seconds = time.perf_counter() - t0
    finally:
        if started:
            ray.shutdown()
    return result

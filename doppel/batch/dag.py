"""A plan's jobs expanded into tasks and the dependencies between them (a DAG), checked before anything runs.

* A glob in an input option gives one task per match; several globbed options give every combination; a list
  option (export ``formats``) one task per value; a frame range ("1:240") of a chunked stage one task per chunk.
  The match's name (without suffix) fills ``{placeholder}`` in ``out``, and in the other input options
  (``landmarks: "ingest/{session}"``).
* A glob matches the files on disk *and* the outputs other jobs will write: a task reading another task's output
  depends on it. Jobs are expanded in dependency order; a job that could read what a later job writes, and the
  other way round, is a cycle (an error naming both).
* Errors, each one line naming the plan's line and field: a glob matching nothing, an input that neither exists
  nor is made by a job, an unknown placeholder, two tasks writing one path (or one inside the other's output).
"""

from __future__ import annotations

import fnmatch
import glob
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from doppel.batch.plan import JobEntry, Plan, PlanError
from doppel.batch.stages import STAGES, StageSpec

_MAGIC = re.compile(r"[*?\[]")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:[^{}]*)?\}")
DEFAULT_CHUNK = 24      # frames per task of a chunked (render) stage


@dataclass(frozen=True)
class Task:
    """One unit of work: a stage run on concrete inputs, writing one output path."""

    id: str                          # "STAGE:OUT" with OUT relative to the plan root
    job: int                         # index of its job in the plan
    job_name: str                    # the job's name in reports
    stage: str                       # registry name
    values: dict                     # option values: inputs as absolute paths, `out` absolute, expanded values
    out: str                         # absolute output path
    deps: tuple[str, ...]            # ids of the tasks whose outputs it reads
    actor: str | None                # the job's (or plan's) actor
    production: str | None           # the job's (or plan's) production
    line: int                        # the job's line in the plan
    spec: StageSpec                  # the stage (travels with the task: a worker needs no registry)


@dataclass
class Dag:
    """The tasks of a plan in a valid execution order (every task after its dependencies)."""

    plan: Plan
    tasks: dict[str, Task] = field(default_factory=dict)       # id -> task, topological order

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {t: [] for t in self.tasks}
        for t in self.tasks.values():
            for d in t.deps:
                out[d].append(t.id)
        return out

    def describe(self) -> list[str]:
        """The DAG as text, one line per task: ``[stage] out <- inputs (after: deps)``."""
        lines = []
        for t in self.tasks.values():
            after = f"  (after: {', '.join(t.deps)})" if t.deps else ""
            lines.append(f"[{t.stage}] {self.rel(t.out)}{after}")
        return lines

    def rel(self, path: str) -> str:
        try:
            return Path(path).relative_to(self.plan.root).as_posix()
        except ValueError:
            return str(path)


def _is_glob(s: str) -> bool:
    return bool(_MAGIC.search(s))


def _as_pattern(template: str) -> str:
    """An output template as a glob: every placeholder becomes ``*``."""
    return _PLACEHOLDER.sub("*", template)


def _may_overlap(a: str, b: str) -> bool:
    """Could input glob ``a`` name output glob ``b`` or a path inside it (relative POSIX paths)? Segment by segment
    over ``b``'s length: in each segment the literals agree or one side has a wildcard (conservative)."""
    pa, pb = PurePosixPath(a).parts, PurePosixPath(b).parts
    if len(pa) < len(pb):
        return False
    for x, y in zip(pa[:len(pb)], pb, strict=True):
        if _is_glob(x) or _is_glob(y):
            if not (_is_glob(x) and _is_glob(y)) and not fnmatch.fnmatchcase(y if _is_glob(x) else x,
                                                                               x if _is_glob(x) else y):
                return False
        elif x != y:
            return False
    return True


def _match_planned(pattern: str, planned: dict[str, str]) -> list[str]:
    """Planned outputs (relative path -> task id) that glob ``pattern`` matches, segment by segment."""
    pp = PurePosixPath(pattern).parts
    return [p for p in planned if len(PurePosixPath(p).parts) == len(pp)
            and all(fnmatch.fnmatchcase(s, q) for s, q in zip(PurePosixPath(p).parts, pp, strict=True))]


def _rel(plan: Plan, value: str) -> str:
    """A plan path as a POSIX path relative to the root (absolute paths outside it stay absolute)."""
    p = Path(value)
    if not p.is_absolute():
        return PurePosixPath(value).as_posix()
    try:
        return p.relative_to(plan.root).as_posix()
    except ValueError:
        return p.as_posix()


def _job_name(job: JobEntry) -> str:
    return job.options.name or f"{job.stage}#{job.index + 1}"


def _where(plan: Plan, job: JobEntry, fld: str) -> str:
    return f"{plan.path}: line {job.lines.get(fld, job.line)}: jobs[{job.index}].{fld}"


def _job_order(plan: Plan) -> list[JobEntry]:
    """Jobs in an order where a job comes after every job whose outputs it may read; PlanError on a cycle."""
    reads: dict[int, set[int]] = {}
    for job in plan.jobs:
        spec = STAGES[job.stage]
        pats = [_rel(plan, _as_pattern(v)) for f in spec.inputs if (v := getattr(job.options, f.name)) is not None]
        reads[job.index] = {o.index for o in plan.jobs if o.index != job.index
                            and any(_may_overlap(p, _rel(plan, _as_pattern(o.options.out))) for p in pats)}
    order, done = [], set()
    while len(order) < len(plan.jobs):
        ready = [j for j in plan.jobs if j.index not in done and reads[j.index] <= done]
        if not ready:
            stuck = [j for j in plan.jobs if j.index not in done]
            cyc = _find_cycle({j.index: reads[j.index] - done for j in stuck})
            names = " -> ".join(f"jobs[{i}] ({_job_name(plan.jobs[i])}, line {plan.jobs[i].line})" for i in cyc)
            raise PlanError(f"{plan.path}: cycle between jobs: {names}: each reads what the next writes")
        order += ready
        done |= {j.index for j in ready}
    return order


def _find_cycle(graph: dict[int, set[int]]) -> list[int]:
    """One cycle (a list of nodes, the first repeated at the end) in a graph where every node has an edge."""
    node, seen = next(iter(graph)), []
    while node not in seen:
        seen.append(node)
        node = min(graph[node])
    return [*seen[seen.index(node):], node]


def build_dag(plan: Plan) -> Dag:
    """Expand every job into tasks with their dependencies; PlanError (line and field) on the first problem."""
    dag = Dag(plan)
    planned: dict[str, str] = {}                 # relative output path -> task id
    above: dict[str, str] = {}                   # every folder above a planned output -> that output
    for job in _job_order(plan):
        for task in _expand_job(plan, job, planned):
            rel = dag.rel(task.out)
            _check_output(plan, job, task, rel, planned, above)
            planned[rel] = task.id
            for folder in PurePosixPath(rel).parents:
                above.setdefault(folder.as_posix(), rel)
            dag.tasks[task.id] = task
    return dag


def _check_output(plan: Plan, job: JobEntry, task: Task, rel: str, planned: dict[str, str],
                  above: dict[str, str]) -> None:
    """Two tasks must not write one path, nor one inside the other's output (a stage folder is replaced whole).
    A few lookups per task (``above``: the folders over every planned output): comparing every pair of outputs made
    a dry run of 8000 tasks take 381 s."""
    ancestors = [q.as_posix() for q in PurePosixPath(rel).parents]
    other = rel if rel in planned else next((q for q in ancestors if q in planned), None) or above.get(rel)
    if other is not None:
        how = "the same path" if other == rel else "one inside the other"
        raise PlanError(f"{_where(plan, job, 'out')}: {task.id} and {planned[other]} would write {how} ({other}); "
                        f"put every varying placeholder in `out`")


def _input_matches(plan: Plan, job: JobEntry, fld: str, value: str, planned: dict[str, str]) -> list[str]:
    """Relative paths an input value names: its glob matches on disk and among planned outputs, or the path."""
    rel = _rel(plan, value)
    if not _is_glob(value):
        if _producer(rel, planned) or (plan.root / rel).exists():
            return [rel]
        raise PlanError(f"{_where(plan, job, fld)}: {value}: not found, and no job of the plan writes it")
    if Path(rel).is_absolute():
        on_disk = glob.glob(rel)
    else:
        on_disk = glob.glob(rel, root_dir=plan.root)
    found = sorted({PurePosixPath(Path(p).as_posix()).as_posix() for p in on_disk} | set(_match_planned(rel, planned)))
    if not found:
        raise PlanError(f"{_where(plan, job, fld)}: {value!r} matches nothing (in {plan.root}, nor among the "
                        f"outputs of the plan's jobs)")
    return found


def _producer(rel: str, planned: dict[str, str]) -> str | None:
    """The task that writes ``rel`` (a relative path), or the folder holding it; None when no task does."""
    p = PurePosixPath(rel)
    for q in (p, *p.parents):
        if q.as_posix() in planned:
            return planned[q.as_posix()]
    return None


def _placeholder_value(path: str) -> str:
    """What ``{placeholder}`` becomes for a matched input: its name without the last suffix."""
    p = PurePosixPath(path)
    return p.stem if p.suffix and not (p.name.startswith(".") and p.name.count(".") == 1) else p.name


def _fill(plan: Plan, job: JobEntry, fld: str, template: str, names: dict[str, str]) -> str:
    """``template`` with its placeholders filled from ``names``; PlanError naming an unknown one."""
    def sub(m: re.Match) -> str:
        if m.group(1) not in names:
            known = ", ".join("{" + k + "}" for k in sorted(names)) or "none"
            raise PlanError(f"{_where(plan, job, fld)}: unknown placeholder {{{m.group(1)}}} in {template!r} "
                            f"(this job has: {known})")
        return format(names[m.group(1)], (m.group(2) or ":")[1:])
    return _PLACEHOLDER.sub(sub, template)


def _chunks(plan: Plan, job: JobEntry, spec: StageSpec) -> list[tuple[int, int] | None]:
    """The frame chunks of a chunked stage ([None] for others): "FIRST:LAST" inclusive, ``chunk_size`` each."""
    if spec.chunk is None or getattr(job.options, spec.chunk) is None:   # no range given: one task, all frames
        return [None]
    text = str(getattr(job.options, spec.chunk))
    m = re.fullmatch(r"\s*(-?\d+)\s*:\s*(-?\d+)\s*", text)
    if not m or int(m.group(1)) > int(m.group(2)):
        raise PlanError(f"{_where(plan, job, spec.chunk)}: {text!r}: expected FIRST:LAST frames, FIRST <= LAST")
    first, last = int(m.group(1)), int(m.group(2))
    size = int(getattr(job.options, "chunk_size", DEFAULT_CHUNK) or DEFAULT_CHUNK)
    return [(a, min(a + size - 1, last)) for a in range(first, last + 1, size)]


def _expand_job(plan: Plan, job: JobEntry, planned: dict[str, str]) -> list[Task]:
    """The tasks of one job (see the module docstring)."""
    spec = STAGES[job.stage]
    opts = job.options.model_dump()
    direct = [f for f in spec.inputs if opts.get(f.name) is not None and not _PLACEHOLDER.search(opts[f.name])]
    templated = [f for f in spec.inputs if opts.get(f.name) is not None and _PLACEHOLDER.search(opts[f.name])]
    choices = [_input_matches(plan, job, f.name, opts[f.name], planned) for f in direct]
    listed = opts[spec.expand[0]] if spec.expand else [None]
    tasks = []
    for combo, item, chunk in itertools.product(itertools.product(*choices), listed, _chunks(plan, job, spec)):
        names = {f.placeholder: _placeholder_value(p) for f, p in zip(direct, combo, strict=True)}
        values = dict(opts)
        values.update({f.name: p for f, p in zip(direct, combo, strict=True)})
        if spec.expand:
            names[spec.expand[1]] = values[spec.expand[1]] = item
        if chunk is not None:
            names["first"], names["last"] = chunk
            values[spec.chunk] = f"{chunk[0]}:{chunk[1]}"
        for f in templated:
            filled = _fill(plan, job, f.name, opts[f.name], names)
            values[f.name] = _input_matches(plan, job, f.name, filled, planned)[0]
        out = _fill(plan, job, "out", opts["out"], names)
        if _is_glob(out):
            raise PlanError(f"{_where(plan, job, 'out')}: {opts['out']!r}: an output path cannot hold * ? or [")
        if chunk is not None and "{first" not in opts["out"]:
            out = f"{out}/chunk_{chunk[0]:06d}_{chunk[1]:06d}"
        ins = [values[f.name] for f in spec.inputs if values.get(f.name) is not None]
        deps = tuple(sorted({d for i in ins if (d := _producer(i, planned))}))
        values.update({f.name: str(plan.root / values[f.name]) for f in spec.inputs if values.get(f.name)})
        values.update({k: str(plan.root / values[k]) for k in spec.file_or_name
                       if values.get(k) and (plan.root / values[k]).is_file()})
        values["out"] = str(plan.root / _rel(plan, out))
        tid = f"{job.stage}:{_rel(plan, out)}"
        tasks.append(Task(tid, job.index, _job_name(job), job.stage, values, values["out"], deps,
                          job.options.actor or plan.actor, job.options.production or plan.production, job.line,
                          spec))
    return tasks

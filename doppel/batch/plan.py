"""The batch plan file: YAML, validated with pydantic, every error naming the file, the line and the field.

    workspace: studio            # optional; every task goes through the consent gate when set
    production: Nightfall        # consent is per production (needed for a real actor)
    actor: jane                  # optional; default: the actor the inputs are attributed to
    root: .                      # optional; folder relative paths are read from (default: the workspace when
                                 #   set, else the plan's folder)
    jobs:
      - {stage: retarget, clips: "mocap/*.bvh", rig: rigs/jane, out: "anims/{clip}"}
      - {stage: export, anim: "anims/*", rig: rigs/jane, formats: [fbx, glb], out: "exports/{anim}.{format}"}

Each job is validated by its stage's own pydantic model (`doppel.batch.stages`), so an unknown option of a stage
is an error naming that option's line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import DoppelError

MAX_PLAN_BYTES = 8 << 20    # a plan lists jobs; anything larger is not one


class PlanError(DoppelError, ValueError):
    """A plan file that cannot be run (bad YAML, an unknown stage or field, a glob matching nothing, a cycle, two
    tasks writing one path); one line naming the file, the line and what is wrong."""


class PlanHeader(BaseModel):
    """The plan's top level (the jobs are checked per stage)."""

    model_config = ConfigDict(extra="forbid")

    workspace: str | None = None      # asset-library workspace (relative to the plan's folder)
    production: str | None = None     # production the work is for (consent is per production)
    actor: str | None = None          # actor whose likeness the jobs work on (default: from the inputs)
    root: str | None = None           # folder relative job paths are resolved against
    jobs: list[dict[str, Any]]        # one mapping per job, each with a `stage`


@dataclass(frozen=True)
class JobEntry:
    """One job of the plan as written: its index, line and validated options."""

    index: int                       # 0-based position in `jobs`
    line: int                        # 1-based line of the job in the plan file
    stage: str                       # registry name ("retarget", "capture ingest", ...)
    options: BaseModel               # the stage's pydantic model instance
    lines: dict[str, int]            # field name -> 1-based line


@dataclass(frozen=True)
class Plan:
    """A validated plan: paths resolved, jobs checked by their stages."""

    path: Path                       # the plan file
    root: Path                       # relative job paths are resolved against this folder
    workspace: Path | None           # the workspace, absolute, or None
    production: str | None
    actor: str | None
    jobs: tuple[JobEntry, ...] = field(default_factory=tuple)


# --- YAML with line numbers -------------------------------------------------------------------------------
def _record_lines(node: yaml.Node, where: tuple, lines: dict[tuple, int]) -> None:
    """Record the 1-based line of every key and item of a composed YAML node (a key's own line for mappings)."""
    lines.setdefault(where, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
            lines[(*where, key)] = k.start_mark.line + 1
            _record_lines(v, (*where, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _record_lines(v, (*where, i), lines)


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[tuple, int]]:
    """(data, lines): the YAML document at ``path`` and key-path -> 1-based line. PlanError on bad YAML."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: plan file not found")
    if path.stat().st_size > MAX_PLAN_BYTES:
        raise PlanError(f"{path}: {path.stat().st_size} bytes, too large for a plan file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as e:
        raise PlanError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise PlanError(f"{path}: {where}not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if node is None:
        raise PlanError(f"{path}: empty plan (expected `jobs:`)")
    lines: dict[tuple, int] = {}
    _record_lines(node, (), lines)
    try:
        data = yaml.SafeLoader("").construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise PlanError(f"{path}: line {mark.line + 1 if mark else 1}: {getattr(e, 'problem', None) or e}") from None
    return data, lines


def line_of(lines: dict[tuple, int], loc: tuple) -> int:
    """The line of the deepest existing key on ``loc``'s path (pydantic's error location)."""
    for n in range(len(loc), -1, -1):
        if tuple(loc[:n]) in lines:
            return lines[tuple(loc[:n])]
    return 1


def validation_error(path: Path, lines: dict[tuple, int], e: ValidationError, prefix: tuple = ()) -> PlanError:
    """The first pydantic error as one line: ``PLAN: line L: jobs[2].clips: what is wrong``."""
    err = e.errors()[0]
    loc = (*prefix, *err["loc"])
    name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "plan"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "missing":
        msg = "field required"
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return PlanError(f"{path}: line {line_of(lines, loc)}: {name}: {msg}{more}")


def load_plan(path: str | os.PathLike) -> Plan:
    """Read and validate a plan file: its header, then each job with its stage's model. PlanError naming the
    line and field of the first problem."""
    from doppel.batch.stages import STAGES

    path = Path(path)
    data, lines = load_yaml_with_lines(path)
    if not isinstance(data, dict):
        raise PlanError(f"{path}: line 1: a plan is a mapping with `jobs:`, got a {type(data).__name__}")
    try:
        head = PlanHeader.model_validate(data)
    except ValidationError as e:
        raise validation_error(path, lines, e) from None
    if not head.jobs:
        raise PlanError(f"{path}: line {line_of(lines, ('jobs',))}: jobs: the plan has no jobs")
    base = path.resolve().parent
    workspace = (base / head.workspace).resolve() if head.workspace else None
    root = (base / head.root).resolve() if head.root else (workspace or base)
    jobs = []
    for i, raw in enumerate(head.jobs):
        loc = ("jobs", i)
        stage = raw.get("stage")
        if stage not in STAGES:
            known = ", ".join(sorted(STAGES))
            where = line_of(lines, (*loc, "stage"))
            raise PlanError(f"{path}: line {where}: jobs[{i}].stage: unknown stage {stage!r} (known: {known})")
        try:
            options = STAGES[stage].model.model_validate({k: v for k, v in raw.items() if k != "stage"})
        except ValidationError as e:
            raise validation_error(path, lines, e, loc) from None
        job_lines = {k: lines[(*loc, k)] for k in raw if (*loc, k) in lines}
        jobs.append(JobEntry(i, lines[loc], stage, options, job_lines))
    return Plan(path, root, workspace, head.production, head.actor, tuple(jobs))

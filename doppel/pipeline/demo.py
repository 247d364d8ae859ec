"""The demo pipeline: the whole pipeline (actor, renders, capture, fit, neural double, rig, retarget, export) run
on the built-in virtual actor.

Each stage is a function ``(ctx) -> Section`` appended to ``STAGES``; later stages read what earlier
ones left in ``ctx``. The report lists every stage with its pictures.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assets.manifest_signing import ManifestKey
from core.storage import atomic_write_json, write_manifest
from doppel.pipeline.demo_capture import stage_capture
from doppel.pipeline.demo_export import stage_export
from doppel.pipeline.demo_fit import stage_fit
from doppel.pipeline.demo_neural import stage_neural
from doppel.pipeline.demo_render import stage_render
from doppel.pipeline.demo_retarget import stage_retarget
from doppel.pipeline.demo_rig import stage_rig
from doppel.pipeline.demo_swap import stage_swap
from doppel.report import Section, write_report

log = logging.getLogger(__name__)


@dataclass
class DemoContext:
    out: Path                       # the demo's output folder
    quick: bool                     # smaller images and fewer iterations, for tests and CI
    seed: int = 0
    state: dict = field(default_factory=dict)  # what stages hand to later stages
    timings: dict[str, float] = field(default_factory=dict)
    key: ManifestKey | None = None  # a workspace's manifest key: the synthetic proofs are signed with it

    @property
    def provenance(self) -> dict[str, str]:
        """What every stage folder's manifest records of whose likeness it is, as the stage commands record it
        (``actor_id``, ``consent_id``, ``production`` in its params): the built-in virtual actor, so that a demo
        folder given to a command later (`doppel retarget CLIP --rig demo_out/rig`) is known as the virtual
        actor's, as a `doppel rig` folder is, instead of an unknown person's."""
        from assets.consent import Use
        from assets.workspace import VIRTUAL_ACTOR_ID
        from doppel.consent_gate import DEFAULT_VIRTUAL_PRODUCTION, authorize, manifest_params

        return manifest_params(authorize(None, VIRTUAL_ACTOR_ID, Use.RIG, DEFAULT_VIRTUAL_PRODUCTION).provenance)


def stage_actor(ctx: DemoContext) -> Section:
    """Build the virtual actor; write its mesh, textured OBJ, texture map and statistics."""
    from core.meshio import write_obj, write_ply, write_png
    from doppel.virtual_actor import build_virtual_actor

    actor = build_virtual_actor(ctx.seed, texture_size=512 if ctx.quick else 1024)
    ctx.state["actor"] = actor
    d = ctx.out / "actor"
    d.mkdir(parents=True, exist_ok=True)
    write_ply(d / "actor.ply", actor.vertices, actor.faces)
    write_png(d / "albedo.png", actor.texture)
    write_obj(d / "actor.obj", actor.vertices, actor.faces, actor.uvs, actor.face_uvs, texture_name="albedo.png")
    stats = actor.statistics()
    atomic_write_json(d / "statistics.json", stats)
    write_manifest(d, "virtual_actor", params={"seed": ctx.seed, "texture_size": int(actor.texture.shape[0]),
                                                 **ctx.provenance},
                   outputs={"mesh": "actor.ply", "obj": "actor.obj", "albedo": "albedo.png",
                            "statistics": "statistics.json"},
                   extra={"consent": "not required: synthetic virtual actor, no real person's likeness"})
    table = {k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in stats.items()}
    return Section(
        "Virtual actor",
        text=("Anny body model with a seeded phenotype, relaxed A-pose and light smile, converted to Doppel's "
              "frame (metres, +Y up, facing +Z, feet on y = 0). Procedural albedo painted in UV space. "
              "A synthetic actor: no consent record is needed."),
        images=[("actor/albedo.png", "albedo texture (UV space, sRGB)")],
        table=table,
        files=["actor/actor.ply", "actor/actor.obj", "actor/statistics.json"],
    )


STAGES: list[tuple[str, Callable[[DemoContext], Section]]] = [
    ("actor", stage_actor),
    ("render", stage_render),
    ("capture", stage_capture),
    ("fit", stage_fit),
    ("neural", stage_neural),
    ("rig", stage_rig),
    ("retarget", stage_retarget),
    ("export", stage_export),
    ("swap", stage_swap),
]


def run_demo(out: Path, quick: bool = False, seed: int = 0,
             progress: Callable[[str, int, int], None] | None = None, key: ManifestKey | None = None) -> Path:
    """Run every stage into ``out``; returns the path of ``out/report.html``.

    progress(stage_name, index, total) is called before each stage. key: the workspace's manifest key when the
    demo is made for one (its synthetic capture session and plate prove themselves there only when signed).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out=out, quick=quick, seed=seed, key=key)
    sections = []
    for i, (name, fn) in enumerate(STAGES):
        if progress:
            progress(name, i, len(STAGES))
        t0 = time.perf_counter()
        sections.append(fn(ctx))
        ctx.timings[name] = round(time.perf_counter() - t0, 3)
        log.info("demo stage %s: %.2f s", name, ctx.timings[name])
    sections.append(Section("Timings", table={k: f"{v:.2f} s" for k, v in ctx.timings.items()}))
    return write_report(out / "report.html", "Doppel demo: the virtual actor", sections,
                        subtitle=f"seed {seed}{' (quick)' if quick else ''}")

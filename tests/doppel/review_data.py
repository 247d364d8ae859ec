"""Tiny data for the review-site tests: a travelling ("cartwheel") glb of the export tests' synthetic rig, and a
workspace whose actor's name holds markup, with consents, lineage, a retarget preview, a render and an export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import roma
import torch

from assets.actors import add_actor
from assets.consent import grant, revoke
from assets.export import export_rig
from assets.workspace import Workspace
from core.meshio import write_png
from core.storage import write_manifest
from doppel.consent_gate import gated
from rigging import Animation
from tests.assets.conftest import make_rig

EVIL_NAME = 'Jane <script>window.__xss = 1</script> "Doe" & <b>Co</b>'
EVIL_PRODUCTION = "Dune <img src=x onerror=window.__xss=2>"
TRAVEL_M = 3.0           # how far the root moves along +x over the clip, metres
FRAMES, FPS = 24, 24.0


def travel_animation(rig, frames: int = FRAMES, travel: float = TRAVEL_M) -> Animation:
    """A cartwheel of the rig: the root turns once about +z while it travels ``travel`` metres along +x."""
    rot = np.tile(np.eye(3), (frames, rig.num_joints, 1, 1))
    ang = np.linspace(0.0, 2 * np.pi, frames)
    rot[:, 0] = roma.rotvec_to_rotmat(torch.tensor(np.stack([0 * ang, 0 * ang, ang], 1))).numpy()
    rot[:, 2] = roma.rotvec_to_rotmat(torch.tensor(np.stack([0.6 * np.sin(3 * ang), 0 * ang, 0 * ang], 1))).numpy()
    tr = np.stack([np.linspace(0.0, travel, frames), np.zeros(frames), np.zeros(frames)], 1)
    return Animation(rig.joint_names, rot, tr, FPS, source="test: cartwheel")


def travel_glb(path: Path) -> tuple[Path, object, Animation]:
    """(the .glb, the rig, the animation): the synthetic rig doing a travelling cartwheel, exported as glTF."""
    rig = make_rig().validate()
    anim = travel_animation(rig)
    export_rig(rig, "glb", path, anim, texture=None, provenance={"actor_id": "jane-doe"})
    return path, rig, anim


def _folder(root: Path, name: str, stage: str, files: dict[str, bytes | np.ndarray | dict]) -> Path:
    d = root / name
    d.mkdir(parents=True)
    for fname, content in files.items():
        p = d / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, np.ndarray):
            write_png(p, content)
        elif isinstance(content, dict):
            p.write_text(json.dumps(content))
        else:
            p.write_bytes(content)
    write_manifest(d, stage, params={"note": "<i>tiny</i>"}, outputs={k: k for k in files})
    return d


def tiny_mp4(path: Path, frames: int = 6, size: int = 32) -> Path:
    from mocap_retarget.preview import write_mp4

    imgs = [np.full((size, size, 3), i / frames, np.float32) for i in range(frames)]
    return write_mp4(path, imgs, fps=12.0)


def make_workspace(root: Path, glb_src: Path) -> Workspace:
    """A workspace: actor EVIL_NAME (id jane-doe) with a valid and a revoked consent, and the chain
    capture -> rig -> animation (preview.mp4 + metrics.json) -> export (.glb) -> render (PNG frames)."""
    ws = Workspace.init(root)
    add_actor(ws, EVIL_NAME, actor_id="jane-doe")
    grant(ws, "jane-doe", "scan,fit,rig,retarget,render,export", EVIL_PRODUCTION, "2099-12-31")
    old = grant(ws, "jane-doe", "scan", "Old Show", "2099-12-31")
    revoke(ws, old.id, "withdrawn <b>by the actor</b>")
    rng = np.random.default_rng(0)
    made = {}
    chain = [("scan", "capture", "captures/take1", "capture", {"contact_sheet.png": rng.random((24, 32, 3))}),
             ("rig", "rig", "rigs/jane", "rig", {"preview.png": rng.random((24, 24, 3))}),
             ("retarget", "animation", "animations/run", "retarget",
              {"preview.png": rng.random((16, 32, 3)),
               "metrics.json": {"scale": 0.97, "skate_after_cleanup_cm_s": 0.4}}),
             ("render", "render", "renders/shot <1>", "render", {"frame_0001.png": rng.random((24, 24, 3))})]
    prev: list[Path] = []
    for use, kind, rel, stage, files in chain:
        if kind == "render":                      # renders are made from the export
            prev = [made["export"]]
        with gated(ws, "jane-doe", use, EVIL_PRODUCTION, command=kind, inputs=prev) as run:
            d = _folder(ws.root, rel, stage, files)
            if kind == "animation":
                tiny_mp4(d / "preview.mp4")
            run.add_output(d, kind=kind)
        made[kind] = d
        prev = [d]
        if kind == "animation":
            out = ws.root / "exports" / "jane <double>.glb"
            out.write_bytes(glb_src.read_bytes())
            with gated(ws, "jane-doe", "export", EVIL_PRODUCTION, command="export", inputs=[made["rig"], d]) as run:
                run.add_output(out, kind="export")
            made["export"] = out
    return ws

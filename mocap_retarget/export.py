"""Writing a retarget's stage folder: animation.npz + manifest.json, retargeted.bvh, metrics.json,
preview.png and preview.mp4."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mocap_retarget.bvh import Motion, write_bvh, write_bvh_frames
from mocap_retarget.retarget import RetargetResult
from mocap_retarget.skeleton import TargetSkeleton
from rigging.animation import Animation

log = logging.getLogger(__name__)

STAGE = "retarget"
BVH_CHUNK_FRAMES = 2048     # frames of a retargeted take turned into BVH rows at a time


def animation_to_motion(anim: Animation, target: TargetSkeleton, order: str = "ZXY") -> Motion:
    """The animation as a BVH-style Motion on the target skeleton: rest pose = the bind pose with
    identity rotations (offsets in world axes), root with 6 channels, other joints 3 (``order``), an End
    Site 5 cm along each leaf joint's bind Y axis. World positions equal ``anim.world(target)``."""
    W, P = target.pose(anim)
    Bw, bp = target.bind_rot, target.bind_pos
    G = np.einsum("fjab,jcb->fjac", W, Bw)                   # world rotation relative to bind, world axes
    local = np.empty_like(G)
    parents = target.parents
    for k, p in enumerate(parents):
        local[:, k] = G[:, k] if p < 0 else np.swapaxes(G[:, p], -1, -2) @ G[:, k]
    offsets = np.array([bp[k] if p < 0 else bp[k] - bp[p] for k, p in enumerate(parents)])
    F, J = W.shape[:2]
    trans = np.broadcast_to(offsets, (F, J, 3)).copy()
    roots = parents < 0
    trans[:, roots] = P[:, roots]
    rot = [f"{a}rotation" for a in order]
    channels = [(["Xposition", "Yposition", "Zposition"] + rot) if p < 0 else list(rot) for p in parents]
    has_child = np.zeros(J, dtype=bool)
    has_child[parents[parents >= 0]] = True
    end_sites = {k: [Bw[k][:, 1] * 0.05] for k in range(J) if not has_child[k]}
    return Motion(list(target.names), parents.copy(), offsets, channels, local, trans, 1.0 / anim.fps, end_sites,
                  scale=1.0, units="m", source="retargeted")


def write_animation_bvh(path: str | Path, anim: Animation, target: TargetSkeleton, units: str = "m",
                        chunk: int = BVH_CHUNK_FRAMES) -> Path:
    """Write ``anim`` on ``target`` as a BVH (`animation_to_motion`'s skeleton) ``chunk`` frames at a time: the same
    bytes as ``write_bvh(path, animation_to_motion(anim, target), units)``, holding one chunk's world and local
    rotations instead of the take's (about 20 kB a frame onto a 104-joint rig). Returns the path."""
    F = anim.num_frames

    def part(a: int, b: int) -> Motion:
        frames = dataclasses.replace(anim, local_rotations=anim.local_rotations[a:b],
                                     root_translation=anim.root_translation[a:b], blendshape_weights=None,
                                     blendshape_names=[])
        return animation_to_motion(frames, target)

    chunks = (part(a, min(a + chunk, F)) for a in range(0, F, chunk))
    return write_bvh_frames(path, part(0, 1), chunks, F, units=units)


def write_outputs(out: str | Path, res: RetargetResult, target: TargetSkeleton,
                  source_path: str | Path | dict[str, str | Path],
                  params: dict, metrics: dict, pose_vertices: Callable[[np.ndarray], np.ndarray] | None = None,
                  faces: np.ndarray | None = None, preview_frames: int = 6, video_seconds: float = 4.0,
                  video_fps: float = 24.0, size: int = 320, fps_info: dict | None = None,
                  finish_preview: Callable[[Path], None] | None = None, solved: Motion | None = None
                  ) -> dict[str, Path]:
    """Write every output into ``out`` and its manifest; returns name -> path.

    source_path: the clip, or the manifest's inputs by name ({"clip": ..., "subject": ...}).
    metrics: from `metrics.compute_metrics(res, target)` (the caller computes them). pose_vertices(frame_indices
    (n,)) -> (n, V, 3) posed mesh vertices (optional; e.g. Rig.pose); faces (T, 3) for shading. The mp4 covers the
    first ``video_seconds`` at ``video_fps``. fps_info: the clip's frame rate as read and as snapped (manifest).
    finish_preview(path): called on preview.png once written, before the manifest hashes it (the CLI watermarks
    and signs it there: `doppel.media_disclosure`); preview.mp4 is disclosed through it as it is encoded when it
    has ``begin`` (an `assets.disclosure.Discloser`: one encode), else called on the written file too.
    solved: the skeleton a marker take was solved to, written as solved.bvh (to check the solve in a DCC tool).
    """
    from core.storage import atomic_write_json, write_manifest
    from mocap_retarget.preview import check_preview_size

    check_preview_size(size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    anim = res.animation
    files = {"animation": out / "animation.npz", "bvh": out / "retargeted.bvh", "metrics": out / "metrics.json",
             "preview_png": out / "preview.png", "preview_mp4": out / "preview.mp4"}
    anim.save(files["animation"])
    write_animation_bvh(files["bvh"], anim, target)
    if solved is not None:
        files["solved_bvh"] = out / "solved.bvh"
        write_bvh(files["solved_bvh"], solved, units="cm")
    full = dict(metrics)
    full["mapping"] = {"source": {r: res.source_map.names[j] for r, j, _ in res.pairs},
                       "target": {r: target.names[k] for r, _, k in res.pairs},
                       "source_unmapped": res.source_map.unmapped_joints}
    atomic_write_json(files["metrics"], full)
    _write_previews(files, res, target, pose_vertices, faces, preview_frames, video_seconds, video_fps, size,
                    finish_preview)
    if finish_preview is not None:
        finish_preview(files["preview_png"])
    extra = {"animation": {"frames": anim.num_frames, "fps": anim.fps, "joints": len(anim.joint_names),
                           "local_rotations": "relative to the bind pose, in each joint's bind frame",
                           "root_translation": "world offset of the root from its bind position, m"},
             "metrics_summary": {k: v for k, v in metrics.items() if not isinstance(v, dict)}}
    if fps_info:
        extra["frame_rate"] = fps_info
    inputs = source_path if isinstance(source_path, dict) else {"clip": source_path}
    write_manifest(out, STAGE, inputs=inputs, params=params,
                   outputs={k: p.name for k, p in files.items()}, extra=extra)
    return files


def _write_previews(files: dict[str, Path], res: RetargetResult, target: TargetSkeleton,
                    pose_vertices: Callable[[np.ndarray], np.ndarray] | None, faces: np.ndarray | None,
                    preview_frames: int, video_seconds: float, video_fps: float, size: int,
                    disclose: Callable[[Path], None] | None = None) -> None:
    """preview.png (a few frames, source beside the double) and preview.mp4 (the first seconds; disclosed by
    `preview.write_disclosed_mp4`)."""
    from mocap_retarget.preview import render_frames, write_disclosed_mp4, write_png

    anim = res.animation
    F = anim.num_frames
    src_parents = _parents_of(res, len(res.source_map.names))
    frames = np.unique(np.linspace(0, F - 1, min(preview_frames, F)).round().astype(int))
    verts = pose_vertices(frames) if pose_vertices is not None else None
    markers = getattr(res, "source_markers", None)
    imgs = render_frames(res.source_positions, src_parents, res.target_positions, target.parents, frames, size=size,
                         vertices=verts, faces=faces, floor_y=target.floor_y, source_floor_y=res.source_floor,
                         markers=markers)
    write_png(files["preview_png"], imgs, columns=2)
    step = max(1, int(round(anim.fps / video_fps)))
    vframes = np.arange(0, min(F, int(video_seconds * anim.fps) + 1), step)
    vverts = pose_vertices(vframes) if pose_vertices is not None else None
    vid = render_frames(res.source_positions, src_parents, res.target_positions, target.parents, vframes,
                        size=size, vertices=vverts, faces=faces, floor_y=target.floor_y,
                        source_floor_y=res.source_floor, markers=markers)
    write_disclosed_mp4(files["preview_mp4"], vid, anim.fps / step, disclose)


def _parents_of(res: RetargetResult, n: int) -> np.ndarray:
    p = getattr(res, "source_parents", None)
    return np.asarray(p) if p is not None else np.full(n, -1)

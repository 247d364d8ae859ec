"""A face performance on a rig written as a retarget stage folder: the animation, its metrics, previews of the
rig's face (a still of several frames and a disclosed video) and the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from doppel.face_performance import find_head_joints
from doppel.face_take import FaceTakeError


def head_region(rig, head_joint: int) -> np.ndarray:
    """(K,) indices of the rig's triangles skinned mostly (>= 50 %) to the head joint and the joints under it."""
    under = np.zeros(rig.num_joints, bool)
    under[head_joint] = True
    for j in range(head_joint + 1, rig.num_joints):     # parents come first (topological order)
        under[j] |= rig.parents[j] >= 0 and under[rig.parents[j]]
    share = (rig.skin_weights * under[rig.skin_indices]).sum(1)
    return np.flatnonzero((share[rig.faces] >= 0.5).all(1))


def write_face_take(out: Path, anim, summary: dict, rig, params: dict, source: str | Path, size: int = 320,
                    disclose=None, panels: int = 6, video_seconds: float = 4.0,
                    body: str | Path | None = None) -> dict[str, Path]:
    """OUT/animation.npz, metrics.json (``summary``), preview.png (the rig's face at ``panels`` frames of the take)
    and preview.mp4 (its first ``video_seconds``), manifest.json (stage 'retarget'; inputs: the take's file and
    the body take's ``body`` folder when there is one). disclose: as in `mocap_retarget.export.write_outputs`.
    Returns name -> path."""
    from core.storage import atomic_write_json, write_manifest
    from mocap_retarget.preview import write_disclosed_mp4, write_png

    out = Path(out)
    files = {"animation": out / "animation.npz", "metrics": out / "metrics.json",
             "preview_png": out / "preview.png", "preview_mp4": out / "preview.mp4"}
    anim.save(files["animation"])
    atomic_write_json(files["metrics"], summary)
    F = anim.num_frames
    shown = np.unique(np.linspace(0, F - 1, min(panels, F)).round().astype(int))
    write_png(files["preview_png"], list(_face_frames(rig, anim, shown, size)), columns=min(len(shown), 3))
    if disclose is not None:
        disclose(files["preview_png"])
    step = max(1, int(round(anim.fps / 24.0)))
    frames = np.arange(0, min(F, int(video_seconds * anim.fps) + 1), step)
    write_disclosed_mp4(files["preview_mp4"], _face_frames(rig, anim, frames, size), anim.fps / step, disclose)
    inputs = {"clip": source, **({} if body is None else {"body": _animation_file(Path(body))})}
    write_manifest(out, "retarget", inputs=inputs, params=params,
                   outputs={k: p.name for k, p in files.items()},
                   extra={"animation": {"frames": F, "fps": anim.fps, "joints": len(anim.joint_names),
                                        "blendshapes": len(anim.blendshape_names),
                                        "local_rotations": "relative to the bind pose, in each joint's bind frame"},
                          "face_take": {k: v for k, v in summary.items() if not isinstance(v, list)}})
    return files


def _face_frames(rig, anim, frames: np.ndarray, size: int):
    """(size, size, 3) uint8 pictures of the rig's face posed at each of ``frames``, one at a time."""
    from rigging.animation import in_rig_order
    from rigging.preview import PreviewPose, render_preview

    try:
        region = head_region(rig, find_head_joints(rig)[0])
    except FaceTakeError:
        region = None
    R, _, w = in_rig_order(anim, rig, np.asarray(frames))          # those frames, not the whole take
    for k, f in enumerate(frames):
        pose = PreviewPose(f"frame {int(f)}", R[k], None if w is None else w[k])
        img = render_preview(rig, [pose], size=size, region=region if region is not None and len(region) else None)
        yield (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _animation_file(path: Path) -> Path:
    """An animation folder's animation.npz (the file a manifest can hash), or the file itself."""
    from rigging.animation import ANIMATION_FILE

    return path / ANIMATION_FILE if path.is_dir() else path

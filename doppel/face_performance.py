"""A face performance read from footage, as an animation of a rig: `doppel swap`'s face track (``tracks.npz``:
per frame the head's rotation in the plate camera and the expression weights solved on the double's face) turned
into Doppel's `rigging.animation.Animation`, so the performance drives a rig in `doppel render shot` and in its
FBX / USD / glTF export, alone or laid onto a body take. Facial capture in the ARKit CSV layout (Live Link Face,
`doppel.arkit_csv`) becomes a `FaceTake` too, without a head rotation.

What goes onto the rig:
- the rig's blendshapes (the face's expressions), matched by name (`rig_blendshape_names` / `_weights`: a FLAME
  double's components as signed coefficients), and the jaw joint's opening where the jaw was solved as a joint;
- the head's rotation on the neck and head joints (40 % / 60 %, in world axes), relative to the camera
  (``head="camera"``: a performer facing the lens is the rig's bind pose; a plate camera's own tilt reads as head
  pitch), relative to the take's median facing (``head="take"``), or left out (``head="none"``: only the face,
  for a body take whose head moves with the body). The head's position in frame is not carried (it is the body's).

Frames where the tracker saw no face hold the nearest frame that had one (the solve's bridge across a gap is
kept inside the take; before the first face and after the last the values are held, not extrapolated).

Reading takes from files: `doppel.face_take_read`; writing the result as a retarget stage folder:
`doppel.face_take_stage`.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from doppel.face_take import FaceTake, FaceTakeError

log = logging.getLogger(__name__)

HEAD_MODES = ("camera", "take", "none")
NECK_SHARE = 0.4                 # of the head's rotation, carried by the neck (the rest by the head joint)
MOVING_RANGE = 0.05              # a curve whose weight spans more than this over the take "moves" (reports)
# camera (OpenCV: x right, y down, z forward) -> the frame of a performer facing the lens (Doppel: +Y up, facing
# +Z towards the camera, +X the performer's left = the image's right)
CAMERA_TO_FACING = np.diag([1.0, -1.0, -1.0])


def held_outside_faces(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """values (F, ...) with the frames before the first valid one and after the last set to those frames' values
    (the solve extrapolates there, without data). Frames between valid ones are kept (the solve's bridge)."""
    idx = np.flatnonzero(valid)
    out = np.array(values, copy=True)
    out[: idx[0]] = values[idx[0]]
    out[idx[-1] + 1:] = values[idx[-1]]
    return out


def head_rotations(take: FaceTake, head: str = "camera") -> np.ndarray:
    """(F, 3, 3) the head's rotation in world axes relative to the rig's bind pose: relative to the camera (a
    performer facing the lens = identity) or to the take's median facing (``head="take"``)."""
    import roma
    import torch

    if head not in HEAD_MODES:
        raise ValueError(f"head must be one of {', '.join(HEAD_MODES)}, got {head!r}")
    R = CAMERA_TO_FACING @ take.rotation
    if head == "take":
        rv = roma.rotmat_to_rotvec(torch.from_numpy(R[take.valid]))
        ref = roma.rotvec_to_rotmat(rv.median(0).values).numpy()
        R = ref.T @ R
    return held_outside_faces(R, take.valid)


def _split(R: np.ndarray, share: float) -> np.ndarray:
    """(F, 3, 3) rotations by ``share`` of each rotation's angle, about the same axis."""
    import roma
    import torch

    rv = roma.rotmat_to_rotvec(torch.from_numpy(R))
    return roma.rotvec_to_rotmat(share * rv).numpy()


def find_head_joints(rig) -> tuple[int, int | None]:
    """(head joint, the neck joint above it or None), found by name: 'head' without namespace or side, and its
    parent when that is a neck joint; a head-only model's 'neck' (FLAME's, which turns the head) when there is no
    'head'. FaceTakeError when the rig has neither."""
    base = [n.lower().split(":")[-1] for n in rig.joint_names]
    heads = [j for j, n in enumerate(base) if n == "head"]
    if not heads and "neck" in base:
        return base.index("neck"), None
    if not heads:
        raise FaceTakeError(f"the rig has no 'head' joint for the head's rotation (joints: "
                            f"{', '.join(rig.joint_names[:8])}, ...); use head='none' for the face alone")
    h = heads[0]
    p = int(rig.parents[h])
    return h, (p if p >= 0 and base[p].startswith("neck") else None)


def face_rotations(take: FaceTake, rig, head: str = "camera") -> np.ndarray:
    """(F, J, 3, 3) local rotations (the rig's convention) of the take's head and jaw; identity elsewhere."""
    import roma
    import torch

    F, J = take.num_frames, rig.num_joints
    world = np.broadcast_to(np.eye(3), (F, J, 3, 3)).copy()
    if head != "none":
        h, neck = find_head_joints(rig)
        Rh = head_rotations(take, head)
        if neck is None:
            world[:, h] = Rh
        else:
            world[:, neck] = _split(Rh, NECK_SHARE)
            world[:, h] = _split(Rh, 1 - NECK_SHARE)
    local = rig.local_from_world_aligned(torch.from_numpy(world)).numpy()
    if take.jaw_rad is not None:
        from doppel.face_swap.face_basis import jaw_open_axis

        try:
            j, axis = jaw_open_axis(rig)
        except KeyError:
            raise FaceTakeError(f"{take.source}: the jaw was tracked as a joint and the rig has no 'jaw' joint "
                                "(a take from another double)") from None
        jaw = held_outside_faces(take.jaw_rad, take.valid)
        local[:, j] = roma.rotvec_to_rotmat(torch.from_numpy(jaw[:, None] * axis[None])).numpy()
    return local


def default_head(take: FaceTake, head: str | None) -> str:
    """The head mode for a take: ``head``, or by default "camera" for a swap's track and "none" for a take without
    a head rotation (an ARKit CSV); FaceTakeError for "camera" / "take" asked of such a take."""
    if head is None:
        return "camera" if take.has_head else "none"
    if head != "none" and not take.has_head:
        raise FaceTakeError(f"{take.source}: its head rotation is not read (an ARKit CSV's head columns differ "
                            "between app versions); leave --head out, or take the head from a body take (--onto)")
    return head


def face_animation(take: FaceTake, rig, head: str | None = None, body=None, offset_s: float = 0.0):
    """(Animation of the rig, summary dict): the take's expressions and head on ``rig`` (head: `HEAD_MODES`, None:
    `default_head`). body: an Animation to lay the face onto: the take is put on the body's clock (its frame rate
    and length, starting ``offset_s`` seconds into the body take; `face_take.resample_take`), the body's joint
    rotations are kept and the face's applied after them, its blendshape weights replaced where the take has
    them. FaceTakeError (one line) for a take whose blendshapes the rig does not have (unless they stay at 0), a
    take without a tracked face, or a face take that does not overlap the body take."""
    from rigging.animation import Animation, AnimationError, in_rig_order

    if not take.valid.any():
        raise FaceTakeError(f"{take.source}: no frame has a tracked face")
    head = default_head(take, head)
    own = take
    if body is not None:
        take = on_body_clock(take, body, offset_s)
    index = {n: i for i, n in enumerate(rig.blendshape_names)}
    still = np.abs(take.blendshape_weights).max(0) < 1e-6
    unknown = [n for n, s in zip(take.blendshape_names, still, strict=True) if n not in index and not s]
    if unknown:
        raise FaceTakeError(f"{take.source}: {len(unknown)} of the take's {len(take.blendshape_names)} expressions "
                            f"are not blendshapes of the rig (first: {unknown[:4]}): a take made for another "
                            "face model")
    if dropped := [n for n, s in zip(take.blendshape_names, still, strict=True) if n not in index and s]:
        log.info("%s: %d curves the rig does not have stay at 0 and are left out: %s", take.source, len(dropped),
                 ", ".join(dropped[:8]))
    F = take.num_frames
    local = face_rotations(take, rig, head)
    t = np.zeros((F, 3))
    w = np.zeros((F, len(rig.blendshape_names)))
    if body is not None:
        try:
            Rb, t, wb = in_rig_order(body, rig)
        except AnimationError as e:
            raise FaceTakeError(str(e)) from None
        local = Rb @ local
        w = wb if wb is not None else w
    known = [k for k, n in enumerate(take.blendshape_names) if n in index]      # the rest stay at 0 (above)
    w[:, [index[take.blendshape_names[k]] for k in known]] = held_outside_faces(take.blendshape_weights[:, known],
                                                                                take.valid)
    anim = Animation(list(rig.joint_names), local, t, take.fps, parents=np.asarray(rig.parents),
                     blendshape_names=list(rig.blendshape_names), blendshape_weights=w,
                     source=take.source).validate()
    return anim, _summary(own, head, body, F, offset_s)


def on_body_clock(take: FaceTake, body, offset_s: float = 0.0) -> FaceTake:
    """``take`` resampled to ``body``'s frames (an Animation: its fps and length), starting ``offset_s`` seconds
    into it; unchanged when they already agree. Logs how much of the body take the face covers; FaceTakeError
    when none of it."""
    from doppel.face_take import resample_take

    same = body.num_frames == take.num_frames and math.isclose(body.fps, take.fps, rel_tol=1e-6) and offset_s == 0
    if same:
        return take
    out = resample_take(take, body.fps, body.num_frames, offset_s)
    if not out.valid.any():
        raise FaceTakeError(f"{take.source}: the face take ({take.num_frames / take.fps:.2f} s from "
                            f"{offset_s:g} s) does not overlap the body take ({body.num_frames / body.fps:.2f} s) "
                            "where it has a face")
    log.info("%s: %d frames at %g fps put on the body take's %d frames at %g fps (from %g s); %d of them hold the "
             "nearest face", take.source, take.num_frames, take.fps, body.num_frames, body.fps, offset_s,
             int((~out.valid).sum()))
    return out


def _summary(take: FaceTake, head: str, body, frames: int, offset_s: float) -> dict:
    """What the metrics file and the command's closing line say about the take (``take`` on its own clock;
    ``frames``: the animation's)."""
    from reconstruction.head_tracking import yaw_pitch_deg

    yaw, pitch = yaw_pitch_deg(take.rotation[take.valid])
    w = take.blendshape_weights[take.valid]
    moving = [n for n, lo, hi in zip(take.blendshape_names, w.min(0), w.max(0), strict=True) if hi - lo > MOVING_RANGE]
    return {"frames": take.num_frames, "fps": take.fps, "frames_with_face": int(take.valid.sum()),
            "frames_held": int((~take.valid).sum()), "cuts": take.cuts, "head": head,
            "yaw_range_deg": [round(float(yaw.min()), 1), round(float(yaw.max()), 1)] if take.has_head else None,
            "pitch_range_deg": [round(float(pitch.min()), 1), round(float(pitch.max()), 1)] if take.has_head else None,
            "blendshapes": len(take.blendshape_names), "blendshapes_moving": moving,
            "jaw_joint": take.jaw_rad is not None, "onto_body": None if body is None else body.source,
            "animation_frames": frames, "animation_fps": take.fps if body is None else body.fps,
            "face_offset_s": offset_s}


def explain_take(take: FaceTake, rig=None) -> str:
    """What a take holds, in lines a person reads (`doppel retarget --explain`): frames, rate, head, each curve's
    range; with ``rig``, where each curve goes (its blendshape, or left out / refused when the rig lacks it) and
    the joints that take the head and the jaw."""
    w = take.blendshape_weights
    lo, hi = w.min(0), w.max(0)
    moving = hi - lo > MOVING_RANGE
    used = np.abs(w).max(0) >= 1e-6          # a curve at 0 throughout is left out where the rig lacks it
    lines = [f"{take.source}: {take.num_frames} frames at {take.fps:g} fps, {int(take.valid.sum())} with a face; "
             f"head rotation {'read' if take.has_head else 'not read'}; jaw as a joint: "
             f"{'yes' if take.jaw_rad is not None else 'no'}; {len(take.blendshape_names)} curves, "
             f"{int(moving.sum())} moving"]
    index = {} if rig is None else {n: i for i, n in enumerate(rig.blendshape_names)}
    for k, n in enumerate(take.blendshape_names):
        where = "" if rig is None else ("  -> rig blendshape" if n in index else
                                        "  -> not in the rig: " + ("refused" if used[k] else "left out (at 0)"))
        lines.append(f"  {n:24s} {lo[k]:6.3f} .. {hi[k]:6.3f}{where}")
    if rig is not None and take.has_head:
        try:
            h, neck = find_head_joints(rig)
            lines.append(f"head -> {rig.joint_names[h]}" + ("" if neck is None else
                                                            f" (and {rig.joint_names[neck]}, {NECK_SHARE:.0%})"))
        except FaceTakeError as e:
            lines.append(f"head -> {e}")
    return "\n".join(lines)


def posed_head_rotations(anim, rig) -> np.ndarray:
    """(F, 3, 3) the rig's head joint's rotation in world axes relative to its bind pose, as ``anim`` poses it
    (forward kinematics): what a take's head rotation became on the rig."""
    h = find_head_joints(rig)[0]
    W = rig.forward_kinematics(anim.local_rotations, anim.root_translation, anim.blendshape_weights)
    return W[:, h, :3, :3].double().numpy() @ np.asarray(rig.bind_matrices, np.float64)[h, :3, :3].T

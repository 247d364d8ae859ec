"""USD skeletal animation (``UsdSkel``: a Skeleton bound to a SkelAnimation) as a mocap clip (usd-core).

The Skeleton with an animation source (of several, the one named, else the largest) is read through
``UsdSkel.Cache``: rest pose from its
bind transforms (else its rest transforms), per time code the joint world transforms (skeleton space times the
skeleton prim's local-to-world). The stage's metersPerUnit and upAxis bring it to Doppel's frame; its
timeCodesPerSecond is the frame rate (snapped by the caller). Joint names: the skeleton's jointNames when
authored (Doppel's exports keep the original names there), else the last element of each joint path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mocap_retarget.bvh import Motion
from mocap_retarget.world_motion import ClipError, motion_from_world, unique_names


def read_usd_clip(path: str | Path, subject: str | None = None) -> Motion:
    """Read ``path`` (.usd / .usda / .usdc / .usdz) into a Motion: of several animated Skeletons, the one ``subject``
    names (its prim's name or path, `mocap_retarget.clip_takes.pick_take`), else the one with the most joints, the
    others named (a warning). Raises ClipError naming the file."""
    from pxr import Tf, Usd, UsdGeom

    path = Path(path)
    try:
        stage = Usd.Stage.Open(str(path))
    except Tf.ErrorException as e:
        raise ClipError(f"{path}: unreadable USD ({str(e).strip().splitlines()[-1]})") from e
    if stage is None:
        raise ClipError(f"{path}: unreadable USD")
    query = _skeleton_query(stage, path, subject)
    joints = [str(j) for j in query.GetJointOrder()]
    parents = [int(p) for p in query.GetTopology().GetParentIndices()]
    times = list(query.GetAnimQuery().GetJointTransformTimeSamples())
    if not times:
        times = [Usd.TimeCode.Default()]
    xf = UsdGeom.Xformable(query.GetSkeleton().GetPrim())
    to_doppel = _stage_to_doppel(stage)

    def world_at(time, rest: bool) -> np.ndarray:
        skel = np.array([np.array(m).T for m in query.ComputeJointSkelTransforms(time, rest)])  # column vectors
        prim = np.array(xf.ComputeLocalToWorldTransform(time)).T
        return to_doppel @ prim @ skel

    rest = _bind_pose(query, xf, to_doppel)
    if rest is None:
        rest = world_at(times[0] if isinstance(times[0], float) else Usd.TimeCode.Default(), True)
    world = np.stack([world_at(t, False) for t in times])
    tcps = float(stage.GetTimeCodesPerSecond())
    step = float(np.median(np.diff(times))) if len(times) > 1 and isinstance(times[0], float) else 1.0
    authored = query.GetSkeleton().GetJointNamesAttr().Get()          # jointNames: the DCC's own names
    if authored is not None and len(authored) == len(joints) and len(set(authored)) == len(joints):
        names = [str(n) for n in authored]
    else:
        names = unique_names([j.rsplit("/", 1)[-1] for j in joints], joints)
    return motion_from_world(names, parents, rest, world, tcps / step, str(path))


def _bind_pose(query, xf, to_doppel: np.ndarray) -> np.ndarray | None:
    """(J, 4, 4) the skeleton's bindTransforms (skeleton space) in Doppel's frame, or None when not authored: the
    bind pose is the clip's rest pose (restTransforms are often just the pose at export time)."""
    from pxr import Usd

    bind = query.GetSkeleton().GetBindTransformsAttr().Get()
    if bind is None or len(bind) != len(query.GetJointOrder()):
        return None
    prim = np.array(xf.ComputeLocalToWorldTransform(Usd.TimeCode.Default())).T
    return to_doppel @ prim @ np.array([np.array(m).T for m in bind])


def _skeleton_query(stage, path: Path, subject: str | None):
    """The UsdSkel query of the animated Skeleton to read (see `read_usd_clip`)."""
    from pxr import UsdSkel

    from mocap_retarget.clip_takes import note_skeletons, pick_take, unique_take_names

    cache = UsdSkel.Cache()
    found = []
    for prim in stage.Traverse():
        if prim.IsA(UsdSkel.Skeleton):
            q = cache.GetSkelQuery(UsdSkel.Skeleton(prim))
            if q and q.GetAnimQuery():
                found.append(q)
    if not found:
        raise ClipError(f"{path}: no UsdSkel Skeleton with a SkelAnimation in this stage")
    paths = [str(q.GetSkeleton().GetPrim().GetPath()) for q in found]
    names = unique_take_names([p.lstrip("/") for p in paths])          # 'Stunt2/Skeleton': --subject Stunt2
    sizes = [len(q.GetJointOrder()) for q in found]
    default = max(range(len(found)), key=lambda i: sizes[i])
    index = paths.index(subject) if subject in paths else pick_take(path, names, subject, default, "skeleton")
    note_skeletons(path, dict(zip(names, sizes, strict=True)), names[index], subject)
    return found[index]


def _stage_to_doppel(stage) -> np.ndarray:
    """(4, 4) similarity taking stage coordinates to metres, +Y up (a Z-up stage is turned as Blender's files)."""
    from pxr import UsdGeom

    from core.conventions import ZUP_NEGY_FORWARD_TO_DOPPEL

    M = np.eye(4)
    if UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z:
        M[:3, :3] = ZUP_NEGY_FORWARD_TO_DOPPEL
    mpu = float(UsdGeom.GetStageMetersPerUnit(stage))
    if not (np.isfinite(mpu) and mpu > 0):
        raise ClipError(f"{stage.GetRootLayer().identifier}: metersPerUnit must be > 0, got {mpu}")
    S = np.diag([mpu, mpu, mpu, 1.0])
    return S @ M

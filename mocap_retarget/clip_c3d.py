"""A C3D file of labelled optical markers (Vicon, Motive, Qualisys, Motion Analysis, Cortex) as a mocap clip: read
with ezc3d, turned into Doppel's frame and solved to a skeleton (`mocap_retarget.marker_solve`) when its markers
are the Plug-in Gait / CMU full-body set (`mocap_retarget.marker_set`).

Units from ``POINT:UNITS`` (mm, cm, m); the up axis from ``POINT:Y_SCREEN`` (Vicon writes ``+Z``), else the axis
along which the head markers stand highest above the feet's. The performer's Plug-in Gait measurements come from a
Vicon subject file (--subject SUBJECT.vsk), else from the file's own ``PROCESSING`` group (where Vicon Nexus writes
them: LKneeWidth, LLegLength, ...), else adult averages. A marker's unseen frames are NaN: a negative residual
(ezc3d reads those as NaN), and a point at exactly (0, 0, 0), which some systems write for a marker they lost.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np

from mocap_retarget.bvh import Motion
from mocap_retarget.world_motion import ClipError

log = logging.getLogger(__name__)

UNITS = {"mm": 0.001, "cm": 0.01, "m": 1.0, "meters": 1.0, "millimeters": 0.001}


def _param(c, group: str, name: str):
    try:
        return c["parameters"][group][name]["value"]
    except KeyError:
        return None


def read_c3d_markers(path: str | Path) -> tuple[np.ndarray, list[str], float]:
    """(X (F, M, 3) metres in Doppel's frame (+Y up), NaN where unseen; labels (M,); rate Hz) of a C3D file."""
    return read_c3d_take(path)[:3]


def _processing(c) -> dict[str, float]:
    """The file's PROCESSING group as name -> number (Vicon Nexus's subject measurements, millimetres)."""
    out = {}
    for name, entry in c["parameters"].get("PROCESSING", {}).items():
        value = np.ravel(np.asarray(entry.get("value", []) if isinstance(entry, dict) else []))
        if value.size == 1 and np.issubdtype(value.dtype, np.number) and np.isfinite(value[0]):
            out[name] = float(value[0])
    return out


def read_c3d_take(path: str | Path) -> tuple[np.ndarray, list[str], float, dict[str, float]]:
    """`read_c3d_markers`'s three, and the file's PROCESSING group as name -> number (millimetres)."""
    import ezc3d

    path = Path(path)
    try:
        c = ezc3d.c3d(str(path))
    except (OSError, RuntimeError, ValueError) as e:
        raise ClipError(f"{path}: not a readable C3D file ({e})") from e
    labels = [str(v) for v in (_param(c, "POINT", "LABELS") or [])]
    rate = float((_param(c, "POINT", "RATE") or [0])[0])
    pts = np.asarray(c["data"]["points"], dtype=np.float64)            # (4, M, F)
    if pts.ndim != 3 or pts.shape[1] == 0 or pts.shape[2] == 0:
        raise ClipError(f"{path}: the C3D file holds no marker frames")
    declared = header_frames(path)
    if declared is not None and pts.shape[2] < declared:     # ezc3d reads what is there and says nothing
        raise ClipError(f"{path}: the file ends after {pts.shape[2]} of the {declared} frames its header declares "
                        f"(truncated: copy it again)")
    if not (np.isfinite(rate) and rate > 0):
        raise ClipError(f"{path}: POINT:RATE must be > 0, got {rate}")
    unit = str((_param(c, "POINT", "UNITS") or ["mm"])[0]).strip().lower()
    if unit not in UNITS:
        raise ClipError(f"{path}: POINT:UNITS {unit!r} is not a length unit Doppel reads ({', '.join(UNITS)})")
    X = np.transpose(pts[:3], (2, 1, 0)) * UNITS[unit]                  # (F, M, 3)
    X[(X == 0).all(axis=2)] = np.nan                                     # a lost marker written at the origin
    labels = (labels + [f"marker{i}" for i in range(len(labels), X.shape[1])])[: X.shape[1]]
    y_screen = _param(c, "POINT", "Y_SCREEN")
    up = _up_axis(X, labels, str(y_screen[0]).strip().upper() if y_screen is not None and len(y_screen) else "")
    return X @ _to_y_up(up).T, labels, rate, _processing(c)


HEADER_FRAMES_MAX = 65535     # the header's 16-bit frame numbers: a longer take's count is in its parameters


def header_frames(path: Path) -> int | None:
    """The frame count a C3D's header declares (its first and last frame numbers, words 4 and 5, in the byte order
    of the processor type its parameter section names: 86 = MIPS, big-endian), or None where the header cannot
    tell (a take longer than its 16-bit numbers hold, or a header that does not parse)."""
    with open(path, "rb") as f:
        header = f.read(512)
        if len(header) < 10:
            return None
        f.seek(max(header[0] - 1, 0) * 512)
        params = f.read(4)
    order = ">" if len(params) == 4 and params[3] == 86 else "<"
    first, last = struct.unpack(order + "HH", header[6:10])
    if last >= HEADER_FRAMES_MAX or last < first:
        return None
    return last - first + 1


def _up_axis(X: np.ndarray, labels: list[str], y_screen: str) -> tuple[int, float]:
    """(axis index, sign) of up: POINT:Y_SCREEN when it names an axis, else head markers above foot markers."""
    if len(y_screen) == 2 and y_screen[0] in "+-" and y_screen[1] in "XYZ":
        return "XYZ".index(y_screen[1]), 1.0 if y_screen[0] == "+" else -1.0
    keys = [lab.rsplit(":", 1)[-1].upper() for lab in labels]
    head = [i for i, k in enumerate(keys) if k.endswith(("FHD", "BHD"))]
    feet = [i for i, k in enumerate(keys) if k.endswith(("HEE", "TOE", "ANK"))]
    if not head or not feet:
        return 2, 1.0                                                    # the common lab convention: Z up
    d = np.nanmean(X[:, head], axis=(0, 1)) - np.nanmean(X[:, feet], axis=(0, 1))
    k = int(np.nanargmax(np.abs(d)))
    return k, float(np.sign(d[k]) or 1.0)


def _to_y_up(up: tuple[int, float]) -> np.ndarray:
    """The proper rotation (3, 3) taking the file's up axis to +Y."""
    from mocap_retarget.rotations import rotation_between

    v = np.zeros(3)
    v[up[0]] = up[1]
    return rotation_between(v, np.array([0.0, 1.0, 0.0]))


def subject_of(subject: str | Path | None) -> tuple[str | None, dict | None]:
    """(the performer's subject name, their measurements per side or None) from ``subject``: a Vicon subject file
    (.vsk, named after the subject as Vicon names it, e.g. Stunt1.vsk) or a bare subject name (adult defaults)."""
    from mocap_retarget.marker_solve import SubjectSizes

    if subject is None:
        return None, None
    path = Path(subject)
    if path.suffix.lower() != ".vsk" and not path.is_file():
        return str(subject), None
    if not path.is_file():
        raise ClipError(f"{subject}: subject file not found")
    try:
        return path.stem, SubjectSizes.from_vsk(path)
    except ValueError as e:
        raise ClipError(str(e)) from e


def read_c3d_clip(path: str | Path, subject: str | Path | None = None, report: dict | None = None) -> Motion:
    """A C3D take solved to a skeleton Motion (metres, +Y up). ``subject``: the performer, as their Vicon subject
    file (.vsk: their measurements, and its name picks their markers in a take of several) or their subject name;
    without it adult defaults, and a take of one performer. ``report``: a dict to fill with the solve's quality
    figures (`mocap_retarget.marker_qc`). ClipError naming the file and what is wrong."""
    from mocap_retarget.marker_set import performers
    from mocap_retarget.marker_solve import SubjectSizes, solve_markers

    name, sizes = subject_of(subject)
    X, labels, rate, processing = read_c3d_take(path)
    source = f"the subject file {Path(subject).name}" if sizes else "adult averages"
    if sizes is None and processing.get("LKneeWidth", 0) > 0 and len(performers(labels)) <= 1:
        sizes, source = SubjectSizes.from_values(processing, ("L", "R")), "the file's PROCESSING group (Nexus)"
    motion = solve_markers(X, labels, rate, str(path), sizes, report, performer=name)
    if report is not None:
        report["measurements"] = source
    log.info("%s: %d markers, %d frames at %g Hz solved to a %d-joint skeleton", path, X.shape[1], X.shape[0], rate,
             motion.num_joints)
    return motion

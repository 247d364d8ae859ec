"""Joint centres from a Plug-in Gait marker set, the way Vicon's Plug-in Gait (the Conventional Gait Model) places
them, vectorised over frames: every function takes marker positions (..., 3) in metres and returns (..., 3).

- Hips: Davis et al. (1991)'s, Plug-in Gait's, when the subject's leg length is known (a VSK, or the PROCESSING
  group Nexus writes into a C3D); else Harrington et al. (J Biomech 2007)'s regression from the pelvis width and
  depth alone (the CGM 2 choice).
- Knee, ankle, elbow and shoulder: the chord function. A joint centre J lies at ``delta`` (half the joint's width
  plus a marker's radius) from its lateral marker M, in the plane of the proximal joint centre P, a "wand" W and M,
  with the angle P-J-M a right angle, on the side of the line P-M away from W. Knee: P the hip, W the thigh marker,
  M the knee marker; ankle: the knee, the tibia marker, the ankle marker; shoulder: the thorax's origin, a wand
  perpendicular to the shoulder marker and the thorax's forward axis, the shoulder marker, delta the shoulder
  offset; elbow: the shoulder, a wand normal to the plane of the shoulder, the elbow marker and the wrist, the elbow
  marker.
- Wrist: the wrist markers' midpoint moved towards the palm by half the wrist's thickness plus a marker's radius.

On three Vicon Nexus Plug-in Gait trials (the pyCGM project's test files, with Nexus's own joint centres in them and
the subjects' measurements), every joint centre comes out within 0.0002 mm of Nexus's, and each chord fed Nexus's
proximal centre within 0.0001 mm (`benchmarks/c3d_vs_plugin_gait.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mocap_retarget.rotations import normalize


@dataclass(frozen=True)
class SubjectSizes:
    """The performer's measurements the joint centres need, metres (adult defaults; a Plug-in Gait VSK or a Nexus
    C3D's PROCESSING group holds the measured ones: KneeWidth, AnkleWidth, ElbowWidth, WristWidth (its thickness),
    ShoulderOffset, LegLength, AsisTrocanterDistance, InterAsisDistance)."""

    marker_radius: float = 0.007
    knee_width: float = 0.10
    ankle_width: float = 0.07
    elbow_width: float = 0.07
    shoulder_offset: float = 0.05
    wrist_thickness: float = 0.04
    leg_length: float | None = None               # with it the hips are Davis's (Plug-in Gait's), else Harrington's
    asis_trochanter: float | None = None          # Davis's ASIS-to-trochanter distance (else from the leg length)
    inter_asis: float | None = None               # else measured between the ASIS markers

    @classmethod
    def from_vsk(cls, path: str | Path) -> dict[str, SubjectSizes]:
        """Each side's measurements ("L", "R") from a Vicon Plug-in Gait subject file (.vsk, XML; millimetres):
        {Left,Right}{KneeWidth, AnkleWidth, ElbowWidth, WristWidth, ShoulderOffset, LegLength,
        AsisTrocanterDistance}, InterAsisDistance and MarkerDiameter; a value the file lacks (or gives as 0) keeps
        its default. ValueError naming the file when it is not such a file."""
        import xml.etree.ElementTree as ET

        path = Path(path)
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError) as e:
            raise ValueError(f"{path}: not a readable Vicon subject file (.vsk): {e}") from e
        values = {}
        for el in root.iter("StaticParameter"):
            try:
                values[el.get("NAME", "")] = float(el.get("VALUE", "nan"))
            except ValueError:
                continue
        if not values:
            raise ValueError(f"{path}: no <StaticParameter> in this file: not a Vicon subject file (.vsk)")
        return cls.from_values(values, ("Left", "Right"))

    @classmethod
    def from_values(cls, values: dict[str, float], sides: tuple[str, str]) -> dict[str, SubjectSizes]:
        """Each side's measurements from Plug-in Gait's named values in millimetres: a VSK's (sides "Left",
        "Right": LeftKneeWidth) or a Nexus C3D's PROCESSING group's (sides "L", "R": LKneeWidth)."""
        base = cls()
        if values.get("MarkerDiameter", 0) > 0:
            base = replace(base, marker_radius=values["MarkerDiameter"] / 2000)
        if values.get("InterAsisDistance", 0) > 0:
            base = replace(base, inter_asis=values["InterAsisDistance"] / 1000)
        legs = [values.get(side + "LegLength", 0) for side in sides]
        if all(v > 0 for v in legs):
            base = replace(base, leg_length=sum(legs) / 2000)            # Davis's C takes the mean leg length
        fields = {"knee_width": "KneeWidth", "ankle_width": "AnkleWidth", "elbow_width": "ElbowWidth",
                  "wrist_thickness": "WristWidth", "shoulder_offset": "ShoulderOffset",
                  "asis_trochanter": "AsisTrocanterDistance"}
        out = {}
        for s, side in zip("LR", sides, strict=True):
            got = {f: values[side + n] / 1000 for f, n in fields.items() if values.get(side + n, 0) > 0}
            out[s] = replace(base, **got)
        return out


_ORDER = ("left", "up", "forward")     # x, y, z of Doppel's frame: left x up = forward


def axes(keep: tuple[str, np.ndarray], other: tuple[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Unit axes {"left", "up", "forward"} (..., 3) of a right-handed frame with ``keep``'s axis exactly along its
    vector and ``other``'s axis the other vector made perpendicular to it."""
    (k, a), (o, b) = keep, other
    a = normalize(a)
    b = normalize(b - np.sum(b * a, axis=-1, keepdims=True) * a)
    third = next(n for n in _ORDER if n not in (k, o))
    i, j = _ORDER.index(k), _ORDER.index(o)
    c = np.cross(a, b) if (j - i) % 3 == 1 else np.cross(b, a)       # x cross y = z, cyclically
    return {k: a, o: b, third: c}


def pelvis_axes(m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The pelvis's axes: left along RASI -> LASI, forward from the PSIS midpoint towards the ASIS midpoint."""
    front, back = (m["LASI"] + m["RASI"]) / 2, (m["LPSI"] + m["RPSI"]) / 2
    return axes(("left", m["LASI"] - m["RASI"]), ("forward", front - back))


def thorax_axes(m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The thorax's axes: up from the T10/STRN midpoint to the C7/CLAV midpoint, forward from C7/T10 to CLAV/STRN."""
    top, bottom = (m["C7"] + m["CLAV"]) / 2, (m["T10"] + m["STRN"]) / 2
    front, back = (m["CLAV"] + m["STRN"]) / 2, (m["C7"] + m["T10"]) / 2
    return axes(("up", top - bottom), ("forward", front - back))


def head_axes(m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The head's axes: forward from the back head markers to the front ones, left from the right ones to the left."""
    return axes(("forward", m["LFHD"] + m["RFHD"] - m["LBHD"] - m["RBHD"]),
                ("left", m["LFHD"] + m["LBHD"] - m["RFHD"] - m["RBHD"]))


def harrington_hips(m: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) hip joint centres: from the ASIS midpoint, in millimetres of the pelvis width PW (between the
    ASIS) and depth PD (ASIS midpoint to PSIS midpoint): posterior 0.24 PD + 9.9, inferior 0.30 PW + 10.9, lateral
    0.33 PW + 7.3."""
    ax = pelvis_axes(m)
    front, back = (m["LASI"] + m["RASI"]) / 2, (m["LPSI"] + m["RPSI"]) / 2
    pw = 1000 * np.linalg.norm(m["LASI"] - m["RASI"], axis=-1, keepdims=True)
    pd = 1000 * np.linalg.norm(front - back, axis=-1, keepdims=True)
    base = front - ax["forward"] * (0.24 * pd + 9.9) / 1000 - ax["up"] * (0.30 * pw + 10.9) / 1000
    side = ax["left"] * (0.33 * pw + 7.3) / 1000
    return base + side, base - side


def davis_hips(m: dict[str, np.ndarray], sizes: dict[str, SubjectSizes]) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) hip joint centres by Davis et al. (Hum Mov Sci 1991), Plug-in Gait's: from the ASIS midpoint in
    the pelvis's axes, with C = 0.115 leg length - 15.3 mm, theta 0.5 rad, beta 0.314 rad, the ASIS-trochanter
    distance (else 0.1288 leg length - 48.56 mm) plus a marker's radius, and half the inter-ASIS distance."""
    ax = pelvis_axes(m)
    front = (m["LASI"] + m["RASI"]) / 2
    out = []
    for s, sign in (("L", 1.0), ("R", -1.0)):
        sz = sizes[s]
        leg = 1000 * sz.leg_length
        c = 0.115 * leg - 15.3
        x_dis = 1000 * sz.asis_trochanter if sz.asis_trochanter else 0.1288 * leg - 48.56
        half = (500 * sz.inter_asis if sz.inter_asis else
                500 * np.linalg.norm(m["LASI"] - m["RASI"], axis=-1, keepdims=True))
        theta, beta, r = 0.5, 0.314, 1000 * sz.marker_radius
        fwd = c * np.cos(theta) * np.sin(beta) - (x_dis + r) * np.cos(beta)
        up = -(x_dis + r) * np.sin(beta) - c * np.cos(theta) * np.cos(beta)
        lateral = half - c * np.sin(theta)
        out.append(front + (fwd * ax["forward"] + up * ax["up"] + sign * lateral * ax["left"]) / 1000)
    return out[0], out[1]


def chord(joint: np.ndarray, wand: np.ndarray, marker: np.ndarray, delta: float) -> np.ndarray:
    """The chord function: the point J at ``delta`` from ``marker`` (M), in the plane of ``joint`` (P), ``wand`` (W)
    and M, with P-J-M a right angle, on the side of the line P-M away from W."""
    u = marker - joint
    length = np.linalg.norm(u, axis=-1, keepdims=True)
    u = u / length
    w = wand - joint
    w = normalize(w - np.sum(w * u, axis=-1, keepdims=True) * u)
    cos = np.clip(delta / length, 0.0, 1.0)
    return marker - delta * (cos * u + np.sqrt(1.0 - cos ** 2) * w)


def knee_centre(hip: np.ndarray, thigh: np.ndarray, knee: np.ndarray, sizes: SubjectSizes) -> np.ndarray:
    return chord(hip, thigh, knee, sizes.knee_width / 2 + sizes.marker_radius)


def ankle_centre(knee_centre_: np.ndarray, tibia: np.ndarray, ankle: np.ndarray, sizes: SubjectSizes) -> np.ndarray:
    return chord(knee_centre_, tibia, ankle, sizes.ankle_width / 2 + sizes.marker_radius)


def shoulder_centre(m: dict[str, np.ndarray], side: str, sizes: SubjectSizes) -> np.ndarray:
    """The shoulder joint centre below the acromion marker (``side`` "L" or "R"): the chord from the thorax's
    origin (CLAV moved back by a marker's radius) with a wand perpendicular to the shoulder marker and the thorax's
    forward axis."""
    fwd = thorax_axes(m)["forward"]
    origin = m["CLAV"] - sizes.marker_radius * fwd
    sho = m[side + "SHO"]
    w = np.cross(sho - origin, fwd) if side == "R" else np.cross(fwd, sho - origin)
    return chord(origin, origin + normalize(w), sho, sizes.shoulder_offset + sizes.marker_radius)


def elbow_centre(shoulder: np.ndarray, elbow: np.ndarray, wrist_mid: np.ndarray, side: str,
                 sizes: SubjectSizes) -> np.ndarray:
    """The elbow joint centre medial of the elbow marker: the chord from the shoulder centre with a wand along the
    normal of the plane of the shoulder centre, the elbow marker and the wrist markers' midpoint."""
    n = normalize(np.cross(shoulder - elbow, wrist_mid - elbow))
    wand = elbow + (n if side == "L" else -n)
    return chord(shoulder, wand, elbow, sizes.elbow_width / 2 + sizes.marker_radius)


def wrist_centre(elbow_centre_: np.ndarray, wra: np.ndarray, wrb: np.ndarray, side: str,
                 sizes: SubjectSizes) -> np.ndarray:
    """The wrist joint centre: the midpoint of the thumb-side (WRA) and little-finger-side (WRB) markers moved towards
    the palm, perpendicular to the forearm and to WRB -> WRA, by half the wrist's thickness plus a marker's radius."""
    mid = (wra + wrb) / 2
    palm = np.cross(normalize(mid - elbow_centre_), normalize(wra - wrb))
    palm = palm if side == "L" else -palm
    return mid + (sizes.wrist_thickness / 2 + sizes.marker_radius) * normalize(palm)

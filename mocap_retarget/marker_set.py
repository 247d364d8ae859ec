"""The full-body marker set a C3D take is solved from: Vicon Plug-in Gait's and the CMU motion-capture database's
(whose 41 markers are Plug-in Gait's names plus upper-arm, forearm and fifth-metatarsal markers, with the pelvis
markers named front / back waist). A label is matched after its subject prefix (``Actor1:LASI`` -> ``LASI``),
case-insensitively, under any of its names.

What each marker is for (the solve's segments, `mocap_retarget.marker_solve`):

- pelvis: LASI, RASI, LPSI, RPSI (CMU: LFWT, RFWT, LBWT, RBWT; one SACR may stand for both PSIS markers)
- thorax: C7, T10, CLAV, STRN (RBAK / RBAC, when present, helps)
- head: LFHD, RFHD, LBHD, RBHD
- thigh: the hip centre, LTHI, LKNE; shank: LKNE, LTIB (CMU: LSHN), LANK; foot: the ankle centre, LHEE, LTOE
  (LMT5, when present, helps)
- upper arm: the shoulder centre, LUPA, LELB; forearm: the elbow centre, LWRA, LWRB (LFRM when present);
  hand: LWRA, LWRB, LFIN
"""

from __future__ import annotations

import re

# canonical name -> its other names in common files
ALIASES: dict[str, tuple[str, ...]] = {
    "LASI": ("LFWT",), "RASI": ("RFWT",), "LPSI": ("LBWT",), "RPSI": ("RBWT",),
    "LTIB": ("LSHN",), "RTIB": ("RSHN",), "RBAK": ("RBAC",),
    "LFRM": ("LFRA",), "RFRM": ("RFRA",),
}
SIDE_MARKERS = ("ASI", "PSI", "THI", "KNE", "TIB", "ANK", "HEE", "TOE", "SHO", "UPA", "ELB", "WRA", "WRB", "FIN",
                "FHD", "BHD")
REQUIRED = tuple(s + m for m in SIDE_MARKERS for s in "LR") + ("C7", "T10", "CLAV", "STRN")
OPTIONAL = ("LMT5", "RMT5", "LFRM", "RFRM", "RBAK", "SACR")

_PREFIX = re.compile(r"^.*:")


def canonical_labels(labels: list[str]) -> dict[str, int]:
    """Map the markers a file names (its POINT:LABELS) to the set's canonical names: canonical name -> column.
    A label matching no name of the set is ignored (extra markers, a second copy such as ``RBAC-1``); the first
    column of a name wins."""
    lookup = {name: name for name in REQUIRED + OPTIONAL}
    for name, others in ALIASES.items():
        for other in others:
            lookup[other] = name
    found: dict[str, int] = {}
    for col, label in enumerate(labels):
        key = _PREFIX.sub("", label.strip()).upper()
        name = lookup.get(key)
        if name is not None and name not in found:
            found[name] = col
    if "SACR" in found:                 # a single sacral marker stands for both posterior iliac spines
        found.setdefault("LPSI", found["SACR"])
        found.setdefault("RPSI", found["SACR"])
    return found


def missing_required(found: dict[str, int]) -> list[str]:
    """The set's required markers a file lacks (canonical names, in the set's order)."""
    return [name for name in REQUIRED if name not in found]

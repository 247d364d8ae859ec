"""The full-body marker set a C3D take is solved from: Vicon Plug-in Gait's and the CMU motion-capture database's
(whose 41 markers are Plug-in Gait's names plus upper-arm, forearm and fifth-metatarsal markers, with the pelvis
markers named front / back waist). A label is matched after its subject prefix (``Actor1:LASI`` -> ``LASI``),
case-insensitively, under any of its names.

What each marker is for (`mocap_retarget.plugin_gait`, `mocap_retarget.marker_solve`):

- pelvis: LASI, RASI, LPSI, RPSI (CMU: LFWT, RFWT, LBWT, RBWT; one SACR may stand for both PSIS markers): the pelvis's
  motion and the hip centres
- thorax: C7, T10, CLAV, STRN (RBAK / RBAC, when present, helps): its motion, the shoulders' chord
- head: LFHD, RFHD, LBHD, RBHD
- legs: LTHI (the knee's chord's wand), LKNE, LTIB (CMU: LSHN; the ankle's wand), LANK, LTOE; LMT5, when present,
  turns the foot about its length (else the ankle's axis does, as in Plug-in Gait)
- arms: LSHO, LELB, LWRA (thumb side), LWRB (little finger side), LFIN
- read when present, not needed: LHEE, LUPA, LFRM
"""

from __future__ import annotations

import re

# canonical name -> its other names in common files
ALIASES: dict[str, tuple[str, ...]] = {
    "LASI": ("LFWT",), "RASI": ("RFWT",), "LPSI": ("LBWT",), "RPSI": ("RBWT",),
    "LTIB": ("LSHN",), "RTIB": ("RSHN",), "RBAK": ("RBAC",),
    "LFRM": ("LFRA",), "RFRM": ("RFRA",),
}
SIDE_MARKERS = ("ASI", "PSI", "THI", "KNE", "TIB", "ANK", "TOE", "SHO", "ELB", "WRA", "WRB", "FIN", "FHD", "BHD")
REQUIRED = tuple(s + m for m in SIDE_MARKERS for s in "LR") + ("C7", "T10", "CLAV", "STRN")
OPTIONAL = ("LMT5", "RMT5", "LHEE", "RHEE", "LUPA", "RUPA", "LFRM", "RFRM", "RBAK", "SACR")

_PREFIX = re.compile(r"^.*:")
# a label's key (upper case, no subject prefix) -> the set's canonical name
_LOOKUP = {name: name for name in REQUIRED + OPTIONAL} | {o: n for n, others in ALIASES.items() for o in others}


def canonical_labels(labels: list[str]) -> dict[str, int]:
    """Map the markers a file names (its POINT:LABELS) to the set's canonical names: canonical name -> column.
    A label matching no name of the set is ignored (extra markers, a second copy such as ``RBAC-1``); the first
    column of a name wins."""
    found: dict[str, int] = {}
    for col, label in enumerate(labels):
        name = _LOOKUP.get(_PREFIX.sub("", label.strip()).upper())
        if name is not None and name not in found:
            found[name] = col
    if "SACR" in found:                 # a single sacral marker stands for both posterior iliac spines
        found.setdefault("LPSI", found["SACR"])
        found.setdefault("RPSI", found["SACR"])
    return found


def performers(labels: list[str]) -> list[str]:
    """The subject prefixes ("Actor1" of ``Actor1:LASI``) under which the set's required markers appear, in the
    file's order: more than one is several performers in one take."""
    out: list[str] = []
    for label in labels:
        prefix, _, key = label.strip().rpartition(":")
        if _LOOKUP.get(key.upper()) in REQUIRED and prefix not in out:
            out.append(prefix)
    return out


def explain_markers(labels: list[str], found: dict[str, int]) -> str:
    """One line on how a file's markers met the set: how many it names, the aliases read (``LFWT as LASI``), the
    optional markers present and absent, and the labels no name of the set matched."""
    used = set(found.values())
    keys = [_PREFIX.sub("", label.strip()).upper() for label in labels]
    aliased = sorted(f"{keys[col]} as {name}" for name, col in found.items() if keys[col] != name and name != "SACR"
                     and not (name in ("LPSI", "RPSI") and keys[col] == "SACR"))
    present = [n for n in OPTIONAL if n in found]
    absent = [n for n in OPTIONAL if n not in found and n != "SACR"]
    ignored = [labels[c] for c in range(len(labels)) if c not in used and labels[c].strip()]
    parts = [f"{len(found)} markers of the set"]
    if aliased:
        parts.append("read " + ", ".join(aliased))
    parts.append("optional present: " + (", ".join(present) or "none"))
    parts.append("optional absent: " + (", ".join(absent) or "none"))
    if ignored:
        shown = ", ".join(ignored[:6]) + (f", ... ({len(ignored)} in all)" if len(ignored) > 6 else "")
        parts.append(f"not of the set: {shown}")
    return "; ".join(parts)


def missing_required(found: dict[str, int]) -> list[str]:
    """The set's required markers a file lacks (canonical names, in the set's order)."""
    return [name for name in REQUIRED if name not in found]

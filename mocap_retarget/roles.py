"""Canonical humanoid roles and the automatic mapping of a skeleton's joints onto them.

Roles (side suffix ``_l`` / ``_r``): hips, spine, chest, neck, head, clavicle, upperarm, forearm,
hand, thigh, shin, foot, toe, and fingers thumb1-3, index1-3, middle1-3, ring1-3, pinky1-3.

The mapping is built in three passes, each one recorded in ``BoneMap.reasons``:

1. **Names.** A joint name is normalised (vendor prefixes such as ``mixamorig:``, ``Bip01``,
   ``Character1_`` dropped; CamelCase, ``_``, ``.``, ``-`` and spaces split), its side read from
   ``Left``/``L``/``_l``/``.L``/``left_`` tokens (or an ``l``/``r`` prefix on CMU ASF names such as
   ``lfemur``), and the rest matched against keyword patterns covering CMU (cgspeed BVH and ASF),
   Mixamo, Biovision, MotionBuilder/HumanIK, 3ds Max Biped, OptiTrack Motive, Vicon, Rokoko, Xsens,
   the Unreal Mannequin, SMPL/SMPL-X and Anny's rigs. When several joints match one role the one
   nearest the root wins (twist and helper joints sit below the bone they help).
2. **Topology.** hips = the lowest common ancestor of the thighs; chest = that of the upper arms;
   spine = the joint after the hips on the way to the chest; ``Shoulder`` means the clavicle when an
   upper-arm joint sits below it and the upper arm when nothing else does (Biovision, SMPL); a second
   foot-named joint below the foot is the toe (SMPL's ``left_foot``).
3. **Fallback by shape**, for skeletons whose names say nothing: limbs are found from the rest pose:
   the hips' branches that reach lowest are the legs, the chest's sideways branches the arms, the
   side from the toes' direction (the body faces where its toes point); along each limb the two
   longest consecutive bones are thigh/shin or upper arm/forearm.

A YAML bone map (``role: joint name``) overrides any of it (:func:`load_bone_map`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import DoppelError

SIDES = ("l", "r")
CORE_ROLES = ("hips", "spine", "chest", "neck", "head")
LIMB_ROLES = ("clavicle", "upperarm", "forearm", "hand", "thigh", "shin", "foot", "toe")
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
FINGER_ROLES = tuple(f"{f}{k}" for f in FINGERS for k in (1, 2, 3))
ROLES: tuple[str, ...] = CORE_ROLES + tuple(f"{r}_{s}" for s in SIDES for r in LIMB_ROLES + FINGER_ROLES)
# Roles a skeleton must have to be retargeted as a humanoid.
REQUIRED_ROLES = ("hips", "thigh_l", "shin_l", "foot_l", "thigh_r", "shin_r", "foot_r")

# Role a joint's end hangs on: the role whose joint ends the bone that starts at a role's joint.
# Used to define bone directions (role -> child role).
BONE_CHILD = {
    "hips": "spine", "spine": "chest", "chest": "neck", "neck": "head",
    **{f"clavicle_{s}": f"upperarm_{s}" for s in SIDES},
    **{f"upperarm_{s}": f"forearm_{s}" for s in SIDES},
    **{f"forearm_{s}": f"hand_{s}" for s in SIDES},
    **{f"hand_{s}": f"middle1_{s}" for s in SIDES},
    **{f"thigh_{s}": f"shin_{s}" for s in SIDES},
    **{f"shin_{s}": f"foot_{s}" for s in SIDES},
    **{f"foot_{s}": f"toe_{s}" for s in SIDES},
    **{f"{f}{k}_{s}": f"{f}{k + 1}_{s}" for f in FINGERS for k in (1, 2) for s in SIDES},
}


class BoneMapError(DoppelError, ValueError):
    """A bone map is invalid or a skeleton cannot be mapped (names the file/joint/role)."""


@dataclass
class BoneMap:
    """role -> joint index in the skeleton, with a one-line reason per role and the unmapped joints."""

    names: list[str]
    roles: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)    # role -> why the joint its name matched was not used

    def joint(self, role: str) -> str | None:
        j = self.roles.get(role)
        return None if j is None else self.names[j]

    @property
    def unmapped_joints(self) -> list[str]:
        used = set(self.roles.values())
        return [n for j, n in enumerate(self.names) if j not in used]

    @property
    def missing_roles(self) -> list[str]:
        return [r for r in ROLES if r not in self.roles]

    def explain(self) -> str:
        """Human-readable table: role, joint, why; then what is unmapped."""
        lines = []
        for r in ROLES:
            if r in self.roles:
                lines.append(f"  {r:<12} <- {self.names[self.roles[r]]:<28} ({self.reasons.get(r, '')})")
        miss = self.missing_roles
        lines.append(f"  roles without a joint ({len(miss)}): {', '.join(miss) if miss else 'none'}")
        lines += [f"  {r}: {why}" for r, why in self.dropped.items() if r not in self.roles]
        un = self.unmapped_joints
        lines.append(f"  joints left unmapped ({len(un)}, kept at rest / carried by their parent): "
                     f"{', '.join(un) if un else 'none'}")
        return "\n".join(lines)

    def check_humanoid(self, source: str = "skeleton") -> None:
        """Raise BoneMapError when a required role (hips, both legs) has no joint."""
        miss = [r for r in REQUIRED_ROLES if r not in self.roles]
        if miss:
            why = "".join(f"; {r}: {self.dropped[r]}" for r in miss if r in self.dropped)
            raise BoneMapError(f"{source}: not a humanoid with legs: no joint found for {', '.join(miss)}{why} "
                               f"(joints: {', '.join(self.names[:40])}{' ...' if len(self.names) > 40 else ''}); "
                               "give a YAML bone map with --bone-map")


# --------------------------------------------------------------------------------------- name matching

_PREFIX_RE = re.compile(r"^(?:[\w\-]*:)+|^(?:(?:bip\d*|biped\d*|character\d*|mixamorig\d*|def|b|jnt|j|bn|bone|"
                        r"cc_base|rl)(?:[ _\-.]+|$))+", re.IGNORECASE)   # repeated: VRoid 'J_Bip_L_Hand'; cc_base, rl:
                                                                          # Reallusion CC / iClone
_SIDE_WORDS = {"left": "l", "l": "l", "lft": "l", "lt": "l", "right": "r", "r": "r", "rgt": "r", "rt": "r"}
# Keywords per limb/core role (matched against the side-free, separator-free, lowercase name,
# digits allowed after). Order inside a list does not matter; the nearest-root match wins.
_ROLE_PATTERNS: dict[str, list[str]] = {
    "hips": [r"hips?", r"pelvis", r"root", r"hip ?center", r"hipcenter"],
    "spine": [r"spine\d*", r"ab", r"abdomen", r"lowerback", r"back", r"torso", r"l\d", r"t\d+", r"waist"],
    "chest": [r"chest\d*", r"upperchest", r"thorax", r"ribcage"],
    "neck": [r"neck\d*"],
    "head": [r"head"],
    "clavicle": [r"clavicle", r"collar", r"collarbone", r"shoulder\d*"],
    "upperarm": [r"upperarm\d*", r"uparm", r"arm", r"humerus", r"uarm", r"armupper", r"shldr(?:bend)?"],
    "forearm": [r"forearm(?:\d*|bend)", r"lowerarm\d*", r"lowarm", r"loarm", r"elbow", r"radius", r"farm", r"armlower"],
    "hand": [r"hand", r"wrist"],
    "thigh": [r"upleg", r"upperleg\d*", r"thigh(?:bend)?", r"femur", r"hip", r"uleg", r"legupper"],
    "shin": [r"leg", r"lowerleg\d*", r"shin", r"calf", r"knee", r"tibia", r"loleg", r"lowleg", r"leglower"],
    "foot": [r"foot", r"ankle"],
    "toe": [r"toes?\d*", r"toebase", r"ball", r"toe\d*\w*"],
}
_FINGER_WORDS = {"thumb": "thumb", "index": "index", "middle": "middle", "mid": "middle", "ring": "ring",
                 "pinky": "pinky", "pinkie": "pinky", "little": "pinky", "small": "pinky"}
# Joints that are never a role: helpers, ends, face parts (whole tokens, or these endings of the key).
_EXCLUDE_TOKENS = {"twist", "roll", "end", "nub", "site", "tip", "top", "helper", "ik", "pole", "target", "aux",
                   "jaw", "eye", "eyes", "tongue", "nose", "ear", "brow", "lip", "cheek", "teeth", "share", "dummy"}
# ('...bend' is no end: DAZ Genesis's 'lShldrBend', 'lForearmBend', 'lThighBend' are the limbs)
_EXCLUDE_RE = re.compile(r".*(twist|roll|(?<!b)end|nub|top|tip)\d*$|.*twist.*", re.IGNORECASE)


def _tokens(name: str) -> list[str]:
    s = _PREFIX_RE.sub("", name.strip())
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", s)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", s)
    toks = [t for t in re.split(r"[\s_.\-:|]+", s.lower()) if t]
    return [t for t in toks if t != "c"] if len(toks) > 1 else toks      # VRoid's 'C' (centre): 'J_Bip_C_Hips'


def parse_name(name: str) -> tuple[str | None, str]:
    """(side 'l'/'r'/None, side-free key) of a joint name, e.g. 'mixamorig:LeftUpLeg' -> ('l', 'upleg'),
    'Bip01 L Thigh' -> ('l', 'thigh'), 'clavicle_l' -> ('l', 'clavicle'), 'lfemur' -> ('l', 'femur')."""
    toks = _tokens(name)
    side = None
    rest = []
    for t in toks:
        if side is None and t in _SIDE_WORDS:
            side = _SIDE_WORDS[t]
            continue
        m = re.fullmatch(r"(left|right)(.+)", t)
        if side is None and m:
            side = _SIDE_WORDS[m.group(1)]
            rest.append(m.group(2))
            continue
        rest.append(t)
    key = "".join(rest)
    if side is None and len(key) > 2 and key[0] in "lr":
        # CMU ASF style 'lfemur', OptiTrack 'LThigh' already split; only accept when the remainder is a body word
        cand = key[1:]
        if _match_role(cand) is not None or _match_finger(cand) is not None or cand in ("hipjoint", "fingers"):
            side, key = key[0], cand
    return side, key


def _match_role(key: str) -> str | None:
    for role, pats in _ROLE_PATTERNS.items():
        for p in pats:
            if re.fullmatch(p, key):
                return role
    return None


def _last_word_limb(name: str) -> str | None:
    """The limb role of a name that says the limb before the part ('Arm_L_Elbow', 'Leg_Left_Knee', 'Leg_L_Thigh'):
    the last word's, when the whole name matches none."""
    words = [t for t in _tokens(name) if t not in _SIDE_WORDS]
    role = _match_role(words[-1]) if len(words) > 1 else None
    return role if role in LIMB_ROLES else None


def _match_finger(key: str) -> tuple[str, int | None] | None:
    """('index', phalanx or None) for finger names: 'handindex1', 'index01', 'thumbproximal', 'finger21'."""
    k = key.removeprefix("hand").removeprefix("finger") if not re.fullmatch(r"finger\d+", key) else key
    for w, f in _FINGER_WORDS.items():
        m = re.fullmatch(rf"{w}(?:finger)?(\d*)(proximal|intermediate|medial|middle|distal)?", k)
        if m:
            num = int(m.group(1)[-1]) if m.group(1) else None
            part = m.group(2)
            if part:
                num = {"proximal": 1, "intermediate": 2, "medial": 2, "middle": 2, "distal": 3}[part]
            return f, num
    return None


# ------------------------------------------------------------------------------------------ the mapping


def _depths(parents: np.ndarray) -> np.ndarray:
    d = np.zeros(len(parents), dtype=int)
    for j, p in enumerate(parents):
        d[j] = 0 if p < 0 else d[p] + 1
    return d


def _ancestors(parents: np.ndarray, j: int) -> list[int]:
    out = []
    while j >= 0:
        out.append(j)
        j = int(parents[j])
    return out  # j itself first, root last


def _lca(parents: np.ndarray, a: int, b: int) -> int:
    anc = set(_ancestors(parents, a))
    for x in _ancestors(parents, b):
        if x in anc:
            return x
    return -1


def _is_ancestor(parents: np.ndarray, a: int, b: int) -> bool:
    """True when a is a strict ancestor of b."""
    return a != b and a in _ancestors(parents, b)


def auto_map(names: list[str], parents: np.ndarray, rest_positions: np.ndarray | None = None,
             end_sites: dict[int, list[np.ndarray]] | None = None) -> BoneMap:
    """Map joints onto canonical roles by name, then topology, then (with rest_positions (J, 3)) shape.

    names: J joint names; parents (J,) topological. Returns a BoneMap (roles may be missing; call
    BoneMap.check_humanoid to require legs).
    """
    parents = np.asarray(parents)
    depth = _depths(parents)
    bm = BoneMap(list(names))
    cands, finger_cands = _name_candidates(names)

    def pick(role: str) -> int | None:
        c = cands.get(role)
        return min(c, key=lambda j: (depth[j], j)) if c else None

    for r in [f"{x}_{s}" for s in SIDES for x in LIMB_ROLES] + ["neck", "head"]:
        j = pick(r)
        if j is not None:
            bm.roles[r] = j
            bm.reasons[r] = f"name {names[j]!r}"
    _fix_limb_chains(bm, cands, parents, depth)
    _trunk_by_topology(bm, parents, pick)
    _head_atop_the_chest(bm, parents)
    _neck_between_chest_and_head(bm, parents)
    _assign_fingers(bm, finger_cands, parents, depth)
    if rest_positions is not None and any(r not in bm.roles for r in REQUIRED_ROLES):
        shape = map_by_shape(parents, rest_positions, end_sites or {})
        for r, j in shape.roles.items():
            if r not in bm.roles and j not in bm.roles.values():
                bm.roles[r] = j
                bm.reasons[r] = shape.reasons[r]
    return bm


_FingerCands = dict[tuple[str, str], list[tuple[int | None, int]]]


def _name_candidates(names: list[str]) -> tuple[dict[str, list[int]], _FingerCands]:
    """Candidate joints per role from the names alone: (role -> joints, (finger, side) -> (phalanx number or None,
    joint))."""
    cands: dict[str, list[int]] = {}
    finger_cands: _FingerCands = {}
    anny_like = any(re.fullmatch(r"finger\d-\d\.[LR]", n) for n in names)
    biped_like = any(n.lower().startswith("bip") for n in names)
    for j, n in enumerate(names):
        side, key = parse_name(n)
        if _EXCLUDE_TOKENS.intersection(_tokens(n)) or _EXCLUDE_RE.fullmatch(key):
            continue
        fm = _finger_from_scheme(key, anny_like, biped_like) or _match_finger(key)
        if fm is not None and side is not None:
            finger_cands.setdefault((fm[0], side), []).append((fm[1], j))
            continue
        if "metacarpal" in key or key.startswith("finger"):
            continue
        role = _match_role(key) or (_last_word_limb(n) if side is not None else None)
        if role is None:
            continue
        if role in ("hips", "spine", "chest", "neck", "head"):
            if side is None:
                cands.setdefault(role, []).append(j)
                continue
            if not (role == "hips" and re.fullmatch(r"hips?", key)):      # 'LeftHip' is a thigh
                continue
            role = "thigh"
        if side is not None:
            cands.setdefault(f"{role}_{side}", []).append(j)
    return cands, finger_cands


def _fix_limb_chains(bm: BoneMap, cands: dict[str, list[int]], parents: np.ndarray, depth: np.ndarray) -> None:
    """Clavicles above upper arms and toes below feet (re-picked along the chain), and every limb link in
    ancestor order (a role that breaks the order is dropped)."""
    for s in SIDES:
        _fix_chain(bm, cands, parents, depth, f"clavicle_{s}", f"upperarm_{s}")
        _fix_chain(bm, cands, parents, depth, f"foot_{s}", f"toe_{s}")
        for upper, lower in ((f"clavicle_{s}", f"upperarm_{s}"), (f"thigh_{s}", f"shin_{s}"),
                             (f"shin_{s}", f"foot_{s}"), (f"foot_{s}", f"toe_{s}"),
                             (f"upperarm_{s}", f"forearm_{s}"), (f"forearm_{s}", f"hand_{s}")):
            if upper in bm.roles and lower in bm.roles and not _is_ancestor(parents, bm.roles[upper], bm.roles[lower]):
                bad = lower if lower in ("toe_l", "toe_r", "clavicle_l", "clavicle_r") else upper
                other = lower if bad == upper else upper
                where = "below" if bad == upper else "above"
                bm.dropped[bad] = (f"{bm.names[bm.roles[bad]]!r} matched by its name, but {other} "
                                   f"{bm.names[bm.roles[other]]!r} is not {where} it in the hierarchy"
                                   + (" (a foot parented to an IK control?)" if other.startswith("foot") else ""))
                bm.roles.pop(bad, None)
                bm.reasons.pop(bad, None)


def _trunk_by_topology(bm: BoneMap, parents: np.ndarray, pick) -> None:
    """Hips = common ancestor of the thighs (and of the chest, where the thighs hang from a pelvis beside the
    spine), chest = of the arms (else by name), spine = the first joint from the hips towards the chest."""
    names = bm.names
    if "thigh_l" in bm.roles and "thigh_r" in bm.roles:
        h = _lca(parents, bm.roles["thigh_l"], bm.roles["thigh_r"])
        if h >= 0:
            bm.roles["hips"] = h
            bm.reasons["hips"] = "common ancestor of the thighs"
    elif pick("hips") is not None:
        bm.roles["hips"] = pick("hips")
        bm.reasons["hips"] = f"name {names[bm.roles['hips']]!r}"
    arm_anchor = [bm.roles.get(f"clavicle_{s}", bm.roles.get(f"upperarm_{s}")) for s in SIDES]
    if all(a is not None for a in arm_anchor):
        c = _lca(parents, arm_anchor[0], arm_anchor[1])
        if c >= 0 and c != bm.roles.get("hips"):
            bm.roles["chest"] = c
            bm.reasons["chest"] = "common ancestor of the arms"
    if "chest" not in bm.roles and pick("chest") is not None:
        bm.roles["chest"] = pick("chest")
        bm.reasons["chest"] = f"name {names[bm.roles['chest']]!r}"
    if "hips" in bm.roles and "chest" in bm.roles and not _is_ancestor(parents, bm.roles["hips"], bm.roles["chest"]):
        h = _lca(parents, bm.roles["hips"], bm.roles["chest"])      # DAZ: thighs under 'pelvis', beside the spine
        if h >= 0:
            bm.roles["hips"] = h
            bm.reasons["hips"] = "common ancestor of the thighs and the chest"
    if "hips" in bm.roles and "chest" in bm.roles:
        path = _ancestors(parents, bm.roles["chest"])
        if bm.roles["hips"] in path:
            below = path[: path.index(bm.roles["hips"])]
            if len(below) >= 2:
                bm.roles["spine"] = below[-1]
                bm.reasons["spine"] = "first joint from the hips towards the chest"


def _head_atop_the_chest(bm: BoneMap, parents: np.ndarray) -> None:
    """No neck or head by name (Rigify's 'DEF-spine.004' ... '.006'): the chain that leaves the chest away from the
    arms, followed while it does not branch, ends at the head (a leaf, or where the face's bones branch off)."""
    if "chest" not in bm.roles or "head" in bm.roles or "neck" in bm.roles:
        return
    arms = {bm.roles[r] for r in bm.roles if r.startswith(("clavicle_", "upperarm_"))}
    kids = [j for j in range(len(parents)) if parents[j] == bm.roles["chest"] and j not in arms]
    chain = []
    while len(kids) == 1 and not _EXCLUDE_TOKENS.intersection(_tokens(bm.names[kids[0]])):   # a jaw is no head
        chain.append(kids[0])
        kids = [j for j in range(len(parents)) if parents[j] == chain[-1]]
    if len(chain) >= 2:
        bm.roles["head"] = chain[-1]
        bm.reasons["head"] = "end of the chain above the chest, away from the arms"


def _neck_between_chest_and_head(bm: BoneMap, parents: np.ndarray) -> None:
    """A neck must be below the chest; without one, the joint between the chest and the head is the neck."""
    if "neck" in bm.roles and "chest" in bm.roles and not _is_ancestor(parents, bm.roles["chest"], bm.roles["neck"]):
        bm.roles.pop("neck")
    if "head" in bm.roles and "neck" not in bm.roles and "chest" in bm.roles:
        path = _ancestors(parents, bm.roles["head"])
        if bm.roles["chest"] in path:
            below = path[1: path.index(bm.roles["chest"])]
            if below:
                bm.roles["neck"] = below[-1]
                bm.reasons["neck"] = "joint between the chest and the head"


def _assign_fingers(bm: BoneMap, finger_cands: _FingerCands, parents: np.ndarray, depth: np.ndarray) -> None:
    """Each finger's joints below its hand, ordered by depth: phalanges 1..3."""
    for (finger, side), lst in finger_cands.items():
        hand = bm.roles.get(f"hand_{side}")
        lst = [(num, j) for num, j in lst if hand is None or _is_ancestor(parents, hand, j)]
        lst.sort(key=lambda t: (depth[t[1]], t[1]))
        for k, (_, j) in enumerate(lst[:3], start=1):
            bm.roles[f"{finger}{k}_{side}"] = j
            bm.reasons[f"{finger}{k}_{side}"] = f"name {bm.names[j]!r}, phalanx {k}"


def _finger_from_scheme(key: str, anny_like: bool, biped_like: bool) -> tuple[str, int | None] | None:
    m = re.fullmatch(r"finger(\d)(\d?)", key)
    if m and (anny_like or biped_like):
        n = int(m.group(1))
        idx = n - 1 if anny_like else n          # Anny: finger1 = thumb; 3ds Max Biped: Finger0 = thumb
        if 0 <= idx < 5:
            return FINGERS[idx], None
    return None


def _fix_chain(bm: BoneMap, cands: dict[str, list[int]], parents: np.ndarray, depth: np.ndarray,
               upper: str, lower: str) -> None:
    """When ``lower`` has no joint but a second ``upper`` candidate sits below the chosen one, it is the
    lower role (Biovision/SMPL 'Shoulder' = upper arm below 'Collar'; SMPL 'left_foot' = toe)."""
    if lower in bm.roles or upper not in bm.roles:
        return
    chosen = bm.roles[upper]
    below = [j for j in cands.get(upper, []) if _is_ancestor(parents, chosen, j)]
    if below:
        j = min(below, key=lambda x: depth[x])
        bm.roles[lower] = j
        bm.reasons[lower] = f"name {bm.names[j]!r} below {bm.names[chosen]!r}"


# ------------------------------------------------------------------------------------- shape fallback


@dataclass
class _Tree:
    """A skeleton's hierarchy and rest pose for the shape mapping: children per joint (-1 = the roots)."""

    parents: np.ndarray
    rest: np.ndarray
    end_sites: dict[int, list[np.ndarray]]
    children: dict[int, list[int]]

    @classmethod
    def build(cls, parents: np.ndarray, rest: np.ndarray, end_sites: dict) -> _Tree:
        children: dict[int, list[int]] = {j: [] for j in range(-1, len(parents))}
        for j, p in enumerate(parents):
            children[int(p)].append(j)
        return cls(parents, rest, end_sites, children)

    def subtree(self, j: int) -> list[int]:
        out, stack = [], [j]
        while stack:
            x = stack.pop()
            out.append(x)
            stack.extend(self.children[x])
        return out

    def side(self, j: int, origin: int, left: np.ndarray) -> float:
        """How far the subtree of j lies to the left of joint ``origin`` (mean position, metres along left)."""
        return float((self.rest[self.subtree(j)].mean(0) - self.rest[origin]) @ left)


def map_by_shape(parents: np.ndarray, rest: np.ndarray, end_sites: dict[int, list[np.ndarray]]) -> BoneMap:
    """Roles from the rest pose alone (names ignored): rest (J, 3) world positions of the rest pose.

    Needs a standing rest pose (T or A) with feet below the hips and toes pointing forward.
    """
    parents = np.asarray(parents)
    tree = _Tree.build(parents, rest, end_sites)
    bm = BoneMap([str(j) for j in range(len(parents))])
    hips = _shape_hips(tree)
    if hips < 0:
        return bm
    branches = tree.children[hips]
    upper = branches[int(np.argmax([len(tree.subtree(b)) for b in branches]))]
    up = rest[tree.subtree(upper)].mean(0) - rest[hips]
    up /= np.linalg.norm(up) + 1e-12
    left = _shape_legs(bm, tree, hips, upper, up)
    if left is None:
        return bm
    chest = upper
    while chest >= 0 and len(tree.children[chest]) == 1:
        chest = tree.children[chest][0]
    if chest < 0 or len(tree.children[chest]) < 2:
        return bm
    if chest != upper:
        bm.roles["spine"] = upper
        bm.reasons["spine"] = "shape: first joint above the hips"
    bm.roles["chest"] = chest
    bm.reasons["chest"] = "shape: where the arms branch"
    _shape_arms_and_head(bm, tree, chest, up, left)
    return bm


def _shape_hips(tree: _Tree) -> int:
    """The first joint from the root with >= 3 branches (-1 when the chain forks otherwise)."""
    hips = tree.children[-1][0] if tree.children[-1] else -1
    while hips >= 0 and len(tree.children[hips]) < 3:
        if len(tree.children[hips]) != 1:
            return -1
        hips = tree.children[hips][0]
    return hips


def _shape_legs(bm: BoneMap, tree: _Tree, hips: int, upper: int, up: np.ndarray) -> np.ndarray | None:
    """Hips and both leg chains (the two branches that reach lowest); returns the left direction (from up and
    the toes' forward), or None when the legs or the toes' direction cannot be found."""
    rest = tree.rest
    others = [b for b in tree.children[hips] if b != upper]
    reach = [_reach(b, rest, tree.children, tree.end_sites, -up) for b in others]
    legs = [others[i] for i in np.argsort(reach)[::-1][:2]]
    if len(legs) < 2:
        return None
    leg_chains = [_limb_chain(b, rest, tree.children, tree.end_sites, down=-up) for b in legs]
    fwd = np.zeros(3)
    for ch in leg_chains:
        if ch["foot"] is not None and ch["toe_point"] is not None:
            d = ch["toe_point"] - rest[ch["foot"]]
            fwd += d - (d @ up) * up
    if np.linalg.norm(fwd) < 1e-9:
        return None
    fwd /= np.linalg.norm(fwd)
    left = np.cross(up, fwd)
    bm.roles["hips"] = hips
    bm.reasons["hips"] = "shape: first joint with three branches"
    for b, ch in zip(legs, leg_chains, strict=True):
        side = "l" if tree.side(b, hips, left) > 0 else "r"
        for role in ("thigh", "shin", "foot", "toe"):
            if ch.get(role) is not None:
                bm.roles[f"{role}_{side}"] = ch[role]
                bm.reasons[f"{role}_{side}"] = f"shape: {'left' if side == 'l' else 'right'} leg chain"
    return left


def _shape_arms_and_head(bm: BoneMap, tree: _Tree, chest: int, up: np.ndarray, left: np.ndarray) -> None:
    """The arm chains (the chest's leftmost and rightmost branches) and the neck/head chain (the highest middle
    branch)."""
    rest, children = tree.rest, tree.children
    side_of = {c: tree.side(c, chest, left) for c in children[chest]}
    for side, c in (("l", max(side_of, key=side_of.get)), ("r", min(side_of, key=side_of.get))):
        dirn = left if side == "l" else -left
        ch = _limb_chain(c, rest, children, tree.end_sites, down=dirn, arm=True)
        for role in ("clavicle", "upperarm", "forearm", "hand"):
            if ch.get(role) is not None:
                bm.roles[f"{role}_{side}"] = ch[role]
                bm.reasons[f"{role}_{side}"] = f"shape: {'left' if side == 'l' else 'right'} arm chain"
    middle = [c for c in children[chest] if abs(side_of[c]) < 0.5 * max(abs(v) for v in side_of.values())]
    if not middle:
        return
    c = max(middle, key=lambda x: float((rest[x] - rest[chest]) @ up))
    path = [c]
    while len(children[path[-1]]) == 1:
        path.append(children[path[-1]][0])
    bm.roles["neck"] = path[0]
    bm.reasons["neck"] = "shape: joint above the chest"
    if len(path) > 1:
        bm.roles["head"] = path[-1]
        bm.reasons["head"] = "shape: top of the neck chain"


def _limb_chain(start: int, rest: np.ndarray, children: dict, end_sites: dict, down: np.ndarray,
                arm: bool = False) -> dict:
    """Follow a limb from ``start`` to the tip reaching farthest along ``down``; split it into bones."""
    path = [start]
    while children[path[-1]]:
        path.append(max(children[path[-1]], key=lambda c: _reach(c, rest, children, end_sites, down)))
    pts = [rest[j] for j in path]
    tip = None
    if end_sites.get(path[-1]):
        tip = rest[path[-1]] + max(end_sites[path[-1]], key=lambda o: float(np.linalg.norm(o)))
    ends = pts[1:] + ([tip] if tip is not None else [])
    # bones: (start index in path, vector); zero-length links dropped. Limbs split by twist joints are
    # not recognised here (give names or a bone map for those).
    bones: list[list] = []
    for i, e in enumerate(ends):
        v = e - pts[i]
        if np.linalg.norm(v) < 1e-9:
            continue
        bones.append([i, v])
    out: dict = {"toe_point": None, "foot": None}
    if len(bones) < 2:
        return out
    lens = np.array([np.linalg.norm(v) for _, v in bones])
    sig = [k for k in range(len(bones)) if lens[k] >= 0.4 * lens.max()]
    first = sig[0]
    if arm and len(sig) >= 3 and first == 0:
        first = sig[1]              # a long first bone followed by two more: it is the clavicle
    if first + 1 >= len(bones):
        return out
    a, b = bones[first][0], bones[first + 1][0]
    names = ("upperarm", "forearm", "hand") if arm else ("thigh", "shin", "foot")
    out[names[0]], out[names[1]] = path[a], path[b]
    if b + 1 < len(path):
        out[names[2]] = path[b + 1]
    if arm:
        if first > 0:
            out["clavicle"] = path[bones[first - 1][0]]
        return out
    f = out.get("foot")
    if f is not None:
        fi = path.index(f)
        if fi + 1 < len(path):
            out["toe"] = path[fi + 1]
        out["toe_point"] = tip if tip is not None else rest[path[-1]]
        if out["toe_point"] is not None and np.linalg.norm(out["toe_point"] - rest[f]) < 1e-9:
            out["toe_point"] = None
    return out


def _reach(j: int, rest: np.ndarray, children: dict, end_sites: dict, d: np.ndarray) -> float:
    best = float(rest[j] @ d)
    stack = [j]
    while stack:
        x = stack.pop()
        best = max(best, float(rest[x] @ d), *(float((rest[x] + o) @ d) for o in end_sites.get(x, [])))
        stack.extend(children[x])
    return best


# ------------------------------------------------------------------------------------------- YAML maps


def load_bone_map(path: str | Path, names: list[str]) -> dict[str, int]:
    """Read a YAML bone map and check it against a skeleton's joint names.

    Format (either form)::

        hips: Hips            # role: joint name
        thigh_l: LeftUpLeg
        # or
        bones: {hips: Hips, thigh_l: LeftUpLeg}

    A role mapped to null (``toe_l: null``) removes it. Returns role -> joint index (None = remove).
    """
    import yaml
    from pydantic import BaseModel, ValidationError, field_validator

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: bone map not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise BoneMapError(f"{path}: not a text (UTF-8) YAML bone map; expected lines like 'thigh_l: LeftUpLeg'"
                           ) from None
    except yaml.YAMLError as e:
        raise BoneMapError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from e
    if isinstance(data, dict) and "bones" in data:
        data = data["bones"]

    class _Map(BaseModel):
        bones: dict[str, str | None]

        @field_validator("bones")
        @classmethod
        def _roles(cls, v: dict) -> dict:
            bad = [r for r in v if r not in ROLES]
            if bad:
                raise ValueError(f"unknown role(s) {bad}; roles are: {', '.join(ROLES)}")
            return v

    try:
        parsed = _Map(bones=data if isinstance(data, dict) else {"?": data})
    except ValidationError as e:
        err = e.errors()[0]
        raise BoneMapError(f"{path}: field {'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from None
    out: dict[str, int] = {}
    for role, joint in parsed.bones.items():
        if joint is None:
            out[role] = None
            continue
        if joint not in names:
            raise BoneMapError(f"{path}: role {role!r}: no joint named {joint!r} in the skeleton")
        out[role] = names.index(joint)
    _check_one_role_per_joint(out, names, str(path))
    return out


def _check_one_role_per_joint(roles: dict[str, int | None], names: list[str], where: str) -> None:
    """BoneMapError when a joint is given two roles (e.g. thigh_l and thigh_r on one joint)."""
    seen: dict[int, str] = {}
    for role, j in roles.items():
        if j is None:
            continue
        if j in seen:
            raise BoneMapError(f"{where}: joint {names[j]!r} is given two roles, {seen[j]!r} and {role!r}; a joint "
                               f"carries one role")
        seen[j] = role


def apply_override(bm: BoneMap, override: dict[str, int | None], source: str = "bone map") -> BoneMap:
    """Return a copy of ``bm`` with the override's roles set (None removes a role)."""
    out = BoneMap(bm.names, dict(bm.roles), dict(bm.reasons))
    for role, j in override.items():
        if j is None:
            out.roles.pop(role, None)
            out.reasons[role] = f"removed by {source}"
        else:
            out.roles[role] = j
            out.reasons[role] = f"set by {source}"
    # a joint the override gives a role loses any other role the automatic mapping gave it
    for role, j in override.items():
        if j is None:
            continue
        for other, k in list(out.roles.items()):
            if k == j and other != role and other not in override:
                out.roles.pop(other)
                out.reasons[other] = f"removed: {source} gives its joint to {role}"
    _check_one_role_per_joint(override, out.names, source)
    return out

"""Automatic bone mapping: vendor naming schemes, Anny, the shape fallback, YAML overrides."""

from __future__ import annotations

import numpy as np
import pytest

from mocap_retarget.roles import (
    BoneMapError,
    apply_override,
    auto_map,
    load_bone_map,
    map_by_shape,
    parse_name,
)
from mocap_retarget.synthetic import SCHEMES, WalkSpec, synthetic_walk


@pytest.mark.parametrize("name,expected", [
    ("mixamorig:LeftUpLeg", ("l", "upleg")), ("Bip01 L Thigh", ("l", "thigh")), ("clavicle_l", ("l", "clavicle")),
    ("lfemur", ("l", "femur")), ("rtibia", ("r", "tibia")), ("LeftForeArm", ("l", "forearm")),
    ("RUArm", ("r", "uarm")), ("left_shoulder", ("l", "shoulder")), ("Character1_RightHand", ("r", "hand")),
    ("upperarm01.L", ("l", "upperarm01")), ("Spine1", (None, "spine1")), ("T8", (None, "t8")),
])
def test_parse_name(name, expected):
    assert parse_name(name) == expected


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("rest", ["T", "A"])
def test_every_vendor_scheme_maps_exactly(scheme, rest):
    m = synthetic_walk(WalkSpec(seconds=0.1, fps=30), names=SCHEMES[scheme], rest=rest)
    bm = auto_map(m.names, m.parents, m.rest_positions(), m.end_sites)
    expected = {r: n for r, n in SCHEMES[scheme].items() if r != "spine1"}   # spine1 sits between two roles
    got = {r: bm.joint(r) for r in expected}
    assert got == expected, bm.explain()
    assert bm.unmapped_joints == [SCHEMES[scheme]["spine1"]]


def test_cmu_asf_names():
    names = ["root", "lhipjoint", "lfemur", "ltibia", "lfoot", "ltoes", "rhipjoint", "rfemur", "rtibia", "rfoot",
             "rtoes", "lowerback", "upperback", "thorax", "lowerneck", "upperneck", "head", "lclavicle",
             "lhumerus", "lradius", "lwrist", "lhand", "rclavicle", "rhumerus", "rradius", "rwrist", "rhand"]
    parents = [-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 15, 13, 17, 18, 19, 20, 13, 22, 23, 24, 25]
    bm = auto_map(names, np.array(parents))
    assert {r: bm.joint(r) for r in ("hips", "thigh_l", "shin_r", "foot_l", "toe_r", "chest", "clavicle_l",
                                     "upperarm_r", "forearm_l", "hand_r", "neck", "head", "spine")} == {
        "hips": "root", "thigh_l": "lfemur", "shin_r": "rtibia", "foot_l": "lfoot", "toe_r": "rtoes",
        "chest": "thorax", "clavicle_l": "lclavicle", "upperarm_r": "rhumerus", "forearm_l": "lradius",
        "hand_r": "rwrist", "neck": "lowerneck", "head": "head", "spine": "lowerback"}


def _chain(spec: list[tuple[str, str | None]]) -> tuple[list[str], np.ndarray]:
    names = [n for n, _ in spec]
    return names, np.array([-1 if p is None else names.index(p) for _, p in spec])


def _maps(spec: list[tuple[str, str | None]], expected: dict[str, str]):
    """auto_map of the skeleton ``spec`` ((name, parent name) pairs), checked against ``expected`` (role -> joint)."""
    bm = auto_map(*_chain(spec))
    assert {r: bm.joint(r) for r in expected} == expected
    return bm


def test_daz_genesis_rigs():
    """DAZ's rigs, exported from DAZ Studio to FBX/BVH for previs: Genesis 1/2 and Poser name the upper arm
    'lShldr' (beside 'lCollar'), Genesis 3/8 'lShldrBend' / 'lForearmBend' / 'lThighBend' with twist bones below,
    and hang the thighs from a 'pelvis' beside the spine under 'hip'. Before stop 73 none of those limbs mapped
    (a 'ShldrBend' read as an end bone), so a Genesis 8 take was refused."""
    g1 = [("hip", None), ("abdomen", "hip"), ("chest", "abdomen"), ("neck", "chest"), ("head", "neck")]
    for s in "lr":
        g1 += [(f"{s}Collar", "chest"), (f"{s}Shldr", f"{s}Collar"), (f"{s}ForeArm", f"{s}Shldr"),
               (f"{s}Hand", f"{s}ForeArm"), (f"{s}Buttock", "hip"), (f"{s}Thigh", f"{s}Buttock"),
               (f"{s}Shin", f"{s}Thigh"), (f"{s}Foot", f"{s}Shin")]
    bm = _maps(g1, {
        "hips": "hip", "clavicle_l": "lCollar", "upperarm_l": "lShldr", "forearm_r": "rForeArm", "hand_r": "rHand",
        "thigh_l": "lThigh", "shin_r": "rShin", "foot_l": "lFoot"})
    g8 = [("hip", None), ("pelvis", "hip"), ("abdomenLower", "hip"), ("abdomenUpper", "abdomenLower"),
          ("chestLower", "abdomenUpper"), ("chestUpper", "chestLower"), ("neckLower", "chestUpper"),
          ("neckUpper", "neckLower"), ("head", "neckUpper")]
    for s in "lr":
        g8 += [(f"{s}ThighBend", "pelvis"), (f"{s}ThighTwist", f"{s}ThighBend"), (f"{s}Shin", f"{s}ThighTwist"),
               (f"{s}Foot", f"{s}Shin"), (f"{s}Toe", f"{s}Foot"), (f"{s}Collar", "chestUpper"),
               (f"{s}ShldrBend", f"{s}Collar"), (f"{s}ShldrTwist", f"{s}ShldrBend"),
               (f"{s}ForearmBend", f"{s}ShldrTwist"), (f"{s}ForearmTwist", f"{s}ForearmBend"),
               (f"{s}Hand", f"{s}ForearmTwist")]
    bm = auto_map(*_chain(g8))
    bm.check_humanoid("genesis8.fbx")
    assert {r: bm.joint(r) for r in ("hips", "spine", "chest", "neck", "upperarm_l", "forearm_l", "hand_l",
                                     "thigh_r", "shin_r", "foot_r", "toe_r")} == {
        "hips": "hip", "spine": "abdomenLower", "chest": "chestUpper", "neck": "neckLower",
        "upperarm_l": "lShldrBend", "forearm_l": "lForearmBend", "hand_l": "lHand", "thigh_r": "rThighBend",
        "shin_r": "rShin", "foot_r": "rFoot", "toe_r": "rToe"}
    assert {"lShldrTwist", "rThighTwist", "pelvis"} <= set(bm.unmapped_joints)


def test_reallusion_character_creator_rig():
    """Reallusion Character Creator / iClone ('CC_Base_' before every bone; the thighs under 'CC_Base_Pelvis'
    beside the spine's 'CC_Base_Waist', both under 'CC_Base_Hip'): nothing mapped before stop 73."""
    cc = [("CC_Base_BoneRoot", None), ("CC_Base_Hip", "CC_Base_BoneRoot"), ("CC_Base_Pelvis", "CC_Base_Hip"),
          ("CC_Base_Waist", "CC_Base_Hip"), ("CC_Base_Spine01", "CC_Base_Waist"),
          ("CC_Base_Spine02", "CC_Base_Spine01"), ("CC_Base_NeckTwist01", "CC_Base_Spine02"),
          ("CC_Base_Head", "CC_Base_NeckTwist01")]
    for s in "LR":
        cc += [(f"CC_Base_{s}_Thigh", "CC_Base_Pelvis"), (f"CC_Base_{s}_Calf", f"CC_Base_{s}_Thigh"),
               (f"CC_Base_{s}_Foot", f"CC_Base_{s}_Calf"), (f"CC_Base_{s}_ToeBase", f"CC_Base_{s}_Foot"),
               (f"CC_Base_{s}_Clavicle", "CC_Base_Spine02"), (f"CC_Base_{s}_Upperarm", f"CC_Base_{s}_Clavicle"),
               (f"CC_Base_{s}_UpperarmTwist01", f"CC_Base_{s}_Upperarm"),
               (f"CC_Base_{s}_Forearm", f"CC_Base_{s}_Upperarm"), (f"CC_Base_{s}_Hand", f"CC_Base_{s}_Forearm")]
    _maps(cc, {
        "hips": "CC_Base_Hip", "spine": "CC_Base_Waist", "chest": "CC_Base_Spine02", "head": "CC_Base_Head",
        "clavicle_r": "CC_Base_R_Clavicle", "upperarm_l": "CC_Base_L_Upperarm", "forearm_r": "CC_Base_R_Forearm",
        "hand_l": "CC_Base_L_Hand", "thigh_l": "CC_Base_L_Thigh", "shin_r": "CC_Base_R_Calf",
        "foot_l": "CC_Base_L_Foot", "toe_r": "CC_Base_R_ToeBase"})


def test_vroid_and_limb_first_names():
    """VRoid / VRM exports ('J_Bip_L_UpperLeg', 'J_Bip_C_Hips': two prefixes and a centre mark) and names that say
    the limb before the part ('Leg_L_Knee', 'Arm_Left_Elbow'): neither mapped a limb before stop 73."""
    vroid = [("J_Bip_C_Hips", None), ("J_Bip_C_Spine", "J_Bip_C_Hips"), ("J_Bip_C_Chest", "J_Bip_C_Spine"),
             ("J_Bip_C_UpperChest", "J_Bip_C_Chest"), ("J_Bip_C_Neck", "J_Bip_C_UpperChest"),
             ("J_Bip_C_Head", "J_Bip_C_Neck")]
    limb_first = [("Hips", None), ("Spine", "Hips"), ("Chest", "Spine"), ("Neck", "Chest"), ("Head", "Neck")]
    for s, side in (("L", "Left"), ("R", "Right")):
        vroid += [(f"J_Bip_{s}_UpperLeg", "J_Bip_C_Hips"), (f"J_Bip_{s}_LowerLeg", f"J_Bip_{s}_UpperLeg"),
                  (f"J_Bip_{s}_Foot", f"J_Bip_{s}_LowerLeg"), (f"J_Bip_{s}_ToeBase", f"J_Bip_{s}_Foot"),
                  (f"J_Bip_{s}_Shoulder", "J_Bip_C_UpperChest"), (f"J_Bip_{s}_UpperArm", f"J_Bip_{s}_Shoulder"),
                  (f"J_Bip_{s}_LowerArm", f"J_Bip_{s}_UpperArm"), (f"J_Bip_{s}_Hand", f"J_Bip_{s}_LowerArm")]
        limb_first += [(f"Leg_{s}_Thigh", "Hips"), (f"Leg_{s}_Knee", f"Leg_{s}_Thigh"),
                       (f"Leg_{s}_Ankle", f"Leg_{s}_Knee"), (f"Arm_{side}_Collar", "Chest"),
                       (f"Arm_{side}_UpperArm", f"Arm_{side}_Collar"), (f"Arm_{side}_Elbow", f"Arm_{side}_UpperArm"),
                       (f"Arm_{side}_Wrist", f"Arm_{side}_Elbow")]
    _maps(vroid, {
        "hips": "J_Bip_C_Hips", "chest": "J_Bip_C_UpperChest", "neck": "J_Bip_C_Neck", "head": "J_Bip_C_Head",
        "clavicle_l": "J_Bip_L_Shoulder", "upperarm_r": "J_Bip_R_UpperArm", "forearm_l": "J_Bip_L_LowerArm",
        "hand_r": "J_Bip_R_Hand", "thigh_l": "J_Bip_L_UpperLeg", "shin_r": "J_Bip_R_LowerLeg",
        "foot_l": "J_Bip_L_Foot", "toe_r": "J_Bip_R_ToeBase"})
    _maps(limb_first, {
        "thigh_l": "Leg_L_Thigh", "shin_l": "Leg_L_Knee", "foot_r": "Leg_R_Ankle", "clavicle_l": "Arm_Left_Collar",
        "upperarm_l": "Arm_Left_UpperArm", "forearm_r": "Arm_Right_Elbow", "hand_l": "Arm_Left_Wrist"})


def test_rigify_neck_and_head_from_the_chain_above_the_chest():
    """Rigify's deform bones name no neck or head ('DEF-spine.004' ... '.006'): the chain leaving the chest away
    from the arms ends at the head (a jaw below it is not followed), the joint after the chest is the neck."""
    rig = [("DEF-spine", None)] + [(f"DEF-spine.00{k}", "DEF-spine" if k == 1 else f"DEF-spine.00{k - 1}")
                                   for k in range(1, 7)] + [("DEF-jaw", "DEF-spine.006")]
    for s in "LR":
        rig += [(f"DEF-thigh.{s}", "DEF-spine"), (f"DEF-shin.{s}", f"DEF-thigh.{s}"),
                (f"DEF-foot.{s}", f"DEF-shin.{s}"), (f"DEF-shoulder.{s}", "DEF-spine.003"),
                (f"DEF-upper_arm.{s}", f"DEF-shoulder.{s}"), (f"DEF-forearm.{s}", f"DEF-upper_arm.{s}"),
                (f"DEF-hand.{s}", f"DEF-forearm.{s}")]
    _maps(rig, {
        "hips": "DEF-spine", "chest": "DEF-spine.003", "neck": "DEF-spine.004", "head": "DEF-spine.006",
        "upperarm_l": "DEF-upper_arm.L", "shin_r": "DEF-shin.R"})


def test_a_foot_under_an_ik_control_is_named_in_the_refusal():
    """A game rig whose feet hang from IK controls, not from the shins (seen in a public glTF): the shins found by
    name are dropped, and the refusal and --explain say why (a bone map fixes it)."""
    from mocap_retarget.roles import BoneMapError

    names = ["Root", "Pelvis", "Spine", "Chest", "Neck", "Head", "UpperLeg.L", "LowerLeg.L", "UpperLeg.R",
             "LowerLeg.R", "FootControl.L", "Foot.L", "FootControl.R", "Foot.R"]
    parents = [-1, 0, 1, 2, 3, 4, 1, 6, 1, 8, 0, 10, 0, 12]
    bm = auto_map(names, np.array(parents))
    assert bm.joint("thigh_l") == "UpperLeg.L" and bm.joint("foot_r") == "Foot.R" and bm.joint("shin_l") is None
    assert "shin_l: 'LowerLeg.L' matched by its name, but foot_l 'Foot.L' is not below it" in bm.explain()
    with pytest.raises(BoneMapError, match=r"no joint found for shin_l, shin_r; shin_l: 'LowerLeg.L' matched by "
                                           r"its name, .*IK control"):
        bm.check_humanoid("soldier.glb")


def test_anny_rig(anny_skeleton):
    names, parents, _ = anny_skeleton
    bm = auto_map(names, parents)
    want = {"hips": "root", "spine": "spine05", "chest": "spine01", "neck": "neck01", "head": "head",
            "clavicle_l": "clavicle.L", "upperarm_l": "upperarm01.L", "forearm_l": "lowerarm01.L",
            "hand_l": "wrist.L", "thigh_r": "upperleg01.R", "shin_r": "lowerleg01.R", "foot_r": "foot.R",
            "thumb1_l": "finger1-1.L", "index2_r": "finger2-2.R", "pinky3_l": "finger5-3.L"}
    assert {r: bm.joint(r) for r in want} == want
    assert "upperleg02.L" in bm.unmapped_joints and "eye.L" in bm.unmapped_joints


def test_shape_fallback_with_meaningless_names():
    m = synthetic_walk(WalkSpec(seconds=0.1, fps=30), rest="A", fingers=False)
    ref = auto_map(m.names, m.parents)
    anon = [f"j{i:02d}" for i in range(m.num_joints)]
    bm = auto_map(anon, m.parents, m.rest_positions(), m.end_sites)
    for role in ("hips", "thigh_l", "shin_l", "foot_l", "toe_l", "thigh_r", "shin_r", "foot_r", "toe_r",
                 "chest", "upperarm_l", "forearm_l", "hand_l", "upperarm_r", "forearm_r", "hand_r", "neck", "head"):
        assert bm.roles.get(role) == ref.roles[role], (role, bm.explain())
    assert "shape" in bm.reasons["thigh_l"]
    # and on the shape alone, names ignored
    assert map_by_shape(m.parents, m.rest_positions(), m.end_sites).roles["foot_r"] == ref.roles["foot_r"]


def test_skeleton_without_legs_is_rejected():
    names = ["Hips", "Spine", "Chest", "Neck", "Head", "LeftArm", "RightArm"]
    bm = auto_map(names, np.array([-1, 0, 1, 2, 3, 2, 2]))
    with pytest.raises(BoneMapError, match="not a humanoid with legs.*thigh_l"):
        bm.check_humanoid("arms.bvh")


def test_yaml_bone_map_overrides(tmp_path):
    m = synthetic_walk(WalkSpec(seconds=0.1, fps=30))
    bm = auto_map(m.names, m.parents)
    f = tmp_path / "map.yaml"
    f.write_text("bones:\n  toe_l: null\n  spine: Spine\n", encoding="utf-8")
    over = load_bone_map(f, m.names)
    bm2 = apply_override(bm, over, str(f))
    assert "toe_l" not in bm2.roles and bm2.joint("spine") == "Spine"
    assert "set by" in bm2.reasons["spine"]
    assert "toe_l" in bm.roles                      # the original is untouched
    text = bm2.explain()
    assert "spine" in text and "LowerBack" in text  # now unmapped
    f.write_text("toes_left: LeftToeBase\n", encoding="utf-8")
    with pytest.raises(BoneMapError, match="unknown role.*toes_left"):
        load_bone_map(f, m.names)
    f.write_text("toe_l: NoSuchJoint\n", encoding="utf-8")
    with pytest.raises(BoneMapError, match="toe_l.*NoSuchJoint"):
        load_bone_map(f, m.names)
    f.write_text("toe_l: [unclosed\n", encoding="utf-8")
    with pytest.raises(BoneMapError, match="not valid YAML"):
        load_bone_map(f, m.names)


def test_humanik_roll_bones_are_skipped():
    names, parents = [], []

    def add(n, p):
        names.append(n)
        parents.append(-1 if p is None else names.index(p))

    add("Character1_Hips", None)
    for S in ("Left", "Right"):
        chain = ["UpLeg", "UpLegRoll", "Leg", "LegRoll", "Foot", "ToeBase"]
        prev = "Character1_Hips"
        for c in chain:
            add(f"Character1_{S}{c}", prev)
            prev = f"Character1_{S}{c}"
    add("Character1_Spine", "Character1_Hips")
    add("Character1_Spine1", "Character1_Spine")
    add("Character1_Neck", "Character1_Spine1")
    add("Character1_Head", "Character1_Neck")
    for S in ("Left", "Right"):
        prev = "Character1_Spine1"
        for c in ["Shoulder", "Arm", "ArmRoll", "ForeArm", "ForeArmRoll", "Hand"]:
            add(f"Character1_{S}{c}", prev)
            prev = f"Character1_{S}{c}"
    bm = auto_map(names, np.array(parents))
    assert bm.joint("shin_l") == "Character1_LeftLeg" and bm.joint("forearm_r") == "Character1_RightForeArm"
    assert bm.joint("clavicle_l") == "Character1_LeftShoulder" and bm.joint("upperarm_l") == "Character1_LeftArm"
    assert bm.joint("chest") == "Character1_Spine1" and bm.joint("hips") == "Character1_Hips"
    assert "Character1_LeftArmRoll" in bm.unmapped_joints

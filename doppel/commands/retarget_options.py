"""The options of `doppel retarget` declared once (typer's Annotated form): the clip, the body retarget's memory
limit, and a face performance's head, body take, offset in it and frame rate (`doppel.commands.retarget_face`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MaxMemoryOpt = Annotated[float | None, typer.Option("--max-memory-gb", help="Refuse a clip whose retarget would "
                                                   "need more memory than this (GB; default: half of this "
                                                   "machine's memory or 80% of what is free, the smaller).",
                                                   show_default=False)]
FramesOpt = Annotated[str | None, typer.Option("--frames", help="Retarget the clip's frames A:B only (B exclusive, "
                                               "either side may be empty; the output's frame 0 is the clip's A): a "
                                               "range of a long take, or a take too long for the memory limit in "
                                               "parts.", show_default=False)]
TakeOpt = Annotated[str | None, typer.Option("--take", help="Which take of a file that holds several: a glTF's "
                                             "animation or an FBX's take (animation stack), by name. Default: the "
                                             "glTF's animation with the most keyframes, the FBX's first take; "
                                             "--explain lists them.", show_default=False)]
ResampleOpt = Annotated[float | None, typer.Option("--resample", help="Plot the clip at this frame rate before "
                                                 "retargeting (e.g. 24 for film; 23.976 is 24000/1001): rotations "
                                                 "slerped and translations interpolated between the clip's frames, a "
                                                 "frame that coincides taken as it is (120 -> 24: every fifth).",
                                                 show_default=False)]
SubjectOpt = Annotated[Path | None, typer.Option("--subject", help="A C3D marker take's performer: their Vicon "
                                                 "subject file (.vsk, e.g. Stunt1.vsk) with the Plug-in Gait "
                                                 "measurements (knee, ankle, elbow widths, wrist thickness, shoulder "
                                                 "offset, leg length), or their subject name alone; it picks their "
                                                 "markers in a take of several performers. Without a VSK: the "
                                                 "measurements Vicon Nexus wrote into the C3D, else adult averages. "
                                                 "In an FBX, glTF or USD file of several skeletons (performers, "
                                                 "props): the one to read, by its armature's (or USD prim's) name "
                                                 "(default: the one with the most joints; the file's are named).",
                                                 show_default=False)]
ClipArg = Annotated[Path, typer.Argument(help="Mocap clip to retarget: .bvh, .fbx, .glb/.gltf, .usd/.usda/.usdc/"
                                         ".usdz, Xsens .mvnx or a C3D of Plug-in Gait markers; or a face "
                                         "performance: a `doppel swap` output folder, its tracks.npz, or an ARKit "
                                         "CSV (Live Link Face).",
                                         show_default=False)]
HeadOpt = Annotated[str | None, typer.Option("--head", help="A face performance's head rotation: relative to the "
                                             "camera (facing the lens = bind pose; a swap's default), to the "
                                             "take's median facing ('take'), or 'none' (the face alone; an ARKit "
                                             "CSV's default).", show_default=False)]
OffsetOpt = Annotated[float, typer.Option("--face-offset", help="With --onto: seconds into the body take where "
                                          "the face take starts (it is put on the body take's frame rate).")]
FpsOpt = Annotated[float | None, typer.Option("--fps", help="An ARKit CSV's frame rate when its timecodes cannot "
                                              "tell (a take under a second); a capture take's (its fit folder as "
                                              "the clip; default 24).", show_default=False)]
PerformerOpt = Annotated[str | None, typer.Option("--performer", help="A capture take as the clip: the actor id of "
                                                  "the person who performed it (default: the actor its fit is "
                                                  "registered to), whose consent for retarget it needs.",
                                                  show_default=False)]
OntoOpt = Annotated[Path | None, typer.Option("--onto", help="A face performance: the body take (an animation "
                                              "folder on the same rig) to lay the face onto, on its clock.")]

"""`doppel retarget SWAP_FOLDER|tracks.npz|TAKE.csv --rig RIG --out OUT`: a face performance (read from footage by
`doppel swap`, or an ARKit CSV) as the rig's expressions and head rotation (`doppel.face_performance`)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from doppel.commands.cli_output import cli_console
from doppel.consent_gate import gate_from_cli
from doppel.media_disclosure import discloser


def face_take_options(clip: Path, onto: Path | None, head: str | None, fps: float | None, offset: float) -> bool:
    """Whether CLIP is a face performance (`doppel.face_take_read.is_face_take`); ValueError when --onto, --head,
    --fps or --face-offset is given for a body clip, or --face-offset without --onto."""
    from doppel.face_take_read import is_face_take

    if offset and onto is None:
        raise ValueError("--face-offset places a face take in a body take: give the body take (--onto)")
    if is_face_take(clip):
        return True
    from doppel.take_clip import is_take_fit

    if fps is not None and onto is None and head is None and is_take_fit(clip):
        return False                   # a capture take's fit: --fps is its frame rate
    if onto is not None or head is not None or fps is not None:
        if not Path(clip).exists():
            raise FileNotFoundError(f"{clip}: not found")
        raise ValueError(f"{clip}: not a face performance; --onto, --head and --fps are for one (a `doppel swap` "
                         "folder, its tracks.npz, or an ARKit CSV; --fps also for a take's fit folder)")
    return False


def retarget_face(clip: Path, rig: Path | None, out: Path | None, head: str | None, onto: Path | None,
                  fps: float | None, offset: float, preview_size: int, workspace, actor, production, force: bool,
                  no_provenance: bool, label: str | None, explain: bool = False) -> None:
    """Read the take, gate the rig's likeness, write OUT (staged: whole or nothing) and say what it holds. explain:
    print the take's curves (and, with a rig, where each goes); alone, only that."""
    from core.stage_folders import check_stage_out, staged_stage_dir
    from doppel.face_performance import HEAD_MODES, default_head, explain_take, face_animation
    from doppel.face_take_read import read_face_take
    from doppel.face_take_stage import write_face_take
    from mocap_retarget.preview import check_preview_size
    from rigging import Rig
    from rigging.animation import Animation

    if fps is not None and not fps > 0:
        raise ValueError(f"--fps must be > 0, got {fps:g}")
    if explain and (rig is None or out is None):
        cli_console().print(explain_take(read_face_take(clip, fps)), markup=False, highlight=False, soft_wrap=True)
        return
    if rig is None or out is None:
        raise ValueError("--rig and --out are required (or use --explain alone to see the take)")
    if not rig.is_dir():
        raise ValueError(f"--rig {rig}: a face performance goes onto a rig folder (`doppel rig`: its blendshapes "
                         "and head), not a skeleton file")
    if head is not None and head not in HEAD_MODES:
        raise ValueError(f"--head must be one of {', '.join(HEAD_MODES)}, got {head!r}")
    check_preview_size(preview_size)
    take = read_face_take(clip, fps)
    head = default_head(take, head)
    inputs = [clip, rig] + ([onto] if onto is not None else [])
    check_stage_out(out, "retarget", force, inputs)
    with gate_from_cli(workspace, actor, production, use="retarget", command="retarget", inputs=inputs,
                       likeness=[rig], evidence=[onto] if onto is not None else [], outputs=[out]) as run:
        disclose = discloser(run, no_provenance, label)
        target = Rig.load(rig)
        if explain:
            cli_console().print(explain_take(take, target), markup=False, highlight=False, soft_wrap=True)
        body = Animation.load(onto) if onto is not None else None
        anim, summary = face_animation(take, target, head, body, offset)
        params = {"face_take": str(clip), "head": head, "onto": str(onto) if onto else None, "face_offset_s": offset,
                  "rig": str(rig), **run.manifest_params}
        with staged_stage_dir(out, "retarget", force, inputs) as tmp:
            files = write_face_take(tmp, anim, summary, target, params, take.source, preview_size, disclose,
                                    body=onto)
        run.add_output(out, kind="animation")
    _report(cli_console(), summary, files, out)


def _report(console: Console, s: dict, files: dict, out: Path) -> None:
    held = f", {s['frames_held']} without a face held" if s["frames_held"] else ""
    cuts = f"; the take has cuts at frames {s['cuts']}" if s["cuts"] else ""
    head = "head: not applied" if s["head"] == "none" else (
        f"head ({s['head']}) yaw {s['yaw_range_deg'][0]} to {s['yaw_range_deg'][1]} deg, pitch "
        f"{s['pitch_range_deg'][0]} to {s['pitch_range_deg'][1]} deg")
    onto = "" if s["onto_body"] is None else (f"; laid onto {s['onto_body']} from {s['face_offset_s']:g} s: "
                                              f"{s['animation_frames']} frames at {s['animation_fps']:g} fps")
    console.print(f"face take: {s['frames']} frames at {s['fps']:g} fps{held}; {head}; {s['blendshapes']} "
                  f"expressions, {len(s['blendshapes_moving'])} moving{cuts}{onto}", markup=False, highlight=False,
                  soft_wrap=True)
    console.print(f"wrote {', '.join(p.name for p in files.values())} to {out}", markup=False, highlight=False,
                  soft_wrap=True)

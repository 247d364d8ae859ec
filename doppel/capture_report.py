"""The HTML report of ``doppel capture ingest``: contact sheet, per-camera QC table, triangulation
residuals, and which cameras see the face and the body. Warnings are listed first."""

from __future__ import annotations

from pathlib import Path

from capture.ingest import IngestResult
from doppel.report import Section, write_report


def ingest_sections(res: IngestResult, prefix: str = "") -> list[Section]:
    """Report sections for an ingest; image paths are relative to the report (``prefix`` + name)."""
    warnings = res.warnings
    sections = [Section("Warnings", text="\n\n".join(warnings) if warnings else "none: the take looks usable")]
    for f, sheet in res.contact_sheets.items():
        sections.append(Section(
            f"Contact sheet{'' if len(res.contact_sheets) == 1 else ' ' + f}",
            text=("Every camera with its person mask (magenta tint) and landmarks: body green, face red, hands "
                  "blue. Caption: camera, F = face found, B = body found, number of hands; '!' = a QC warning."),
            images=[(prefix + sheet, "contact sheet")]))
    rows = {}
    for q in res.qc:
        rows[f"{q.frame}/{q.camera}"] = (f"sharpness {q.sharpness:.0f} | exposure {q.exposure:.2f} | clipped "
                                         f"{q.clipped:.1%} | mask {q.mask_fraction:.1%} | "
                                         f"face {'yes' if q.face else 'no'}"
                                         f" | body {'yes' if q.pose else 'no'} | hands {q.hands}"
                                         + (f" | {'; '.join(q.warnings)}" if q.warnings else ""))
    sections.append(Section("Per-camera QC", table=rows))
    tri = res.triangulated
    table = {}
    for f, fr in tri["frames"].items():
        for part, s in fr["summary"].items():
            table[f"{f} {part}"] = (f"{s['triangulated']}/{s['of']} triangulated, reprojection median "
                                    f"{s['median_px']} px, p95 {s['p95_px']} px")
    for c, e in tri["camera_median_residual_px"].items():
        table[f"camera {c} median residual"] = f"{e:.2f} px"
    sections.append(Section("Triangulation", text=(
        "Robust multi-view triangulation (RANSAC over view pairs, DLT, Levenberg-Marquardt refinement); errors "
        f"are RMS reprojection errors over the views used (inlier threshold {tri['threshold_px']} px)."),
        table=table, files=[prefix + "triangulated.json", prefix + "landmarks.npz", prefix + "qc.json"]))
    seen = tri["cameras_seeing"]
    sections.append(Section("Coverage", table={
        "cameras seeing the face": ", ".join(c for c, s in seen.items() if s["face"]) or "none",
        "cameras seeing the body": ", ".join(c for c, s in seen.items() if s["body"]) or "none",
        "cameras seeing neither": ", ".join(c for c, s in seen.items() if not s["face"] and not s["body"]) or "none",
    }))
    sections.append(Section("Timings", table={k: f"{v:.2f} s" for k, v in res.timings.items()}))
    return sections


def write_ingest_report(res: IngestResult) -> Path:
    """Write OUT/report.html for an ingest and return its path."""
    return write_report(res.out / "report.html", f"Capture ingest: {res.session.root.name}", ingest_sections(res),
                        subtitle=f"{len(res.session.cameras)} cameras, {len(res.session.frames)} frame(s)")

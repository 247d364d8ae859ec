"""Write the 3D template of MediaPipe's face-mesh points (reconstruction/fitting/face_template.py).

    PYTHONPATH=. python scripts/make_face_template.py [--seed 0] [--out reconstruction/fitting/data/...]

The calibrated Anny landmark regressor's 478 face points on the default Anny double of ``--seed`` (the
virtual actor's seeded phenotype), origin at its head joint. Doubles whose face landmarks miss points (FLAME's
MediaPipe embedding has no face outline) get them from this template, aligned and moved onto their surface.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconstruction.fitting.face_template import TEMPLATE_PATH, make_face_template, write_face_template


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=TEMPLATE_PATH)
    args = ap.parse_args()
    from doppel.doubles import build_default_rig

    rig, _, _ = build_default_rig("anny", seed=args.seed)
    points, meta = make_face_template(rig)
    write_face_template(args.out, points, {**meta, "seed": args.seed})
    span = points.max(0) - points.min(0)
    print(f"{args.out}: {len(points)} points, span {span[0]:.3f} x {span[1]:.3f} x {span[2]:.3f} m")


if __name__ == "__main__":
    main()

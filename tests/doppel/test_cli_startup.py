"""The CLI starts without the heavy libraries: every `doppel` call (`actor list`, `consent show`, `verify`, a
pipeline script calling it per file) paid for importing torch because one command module imported a torch module
at its top (1.95 s -> 0.40 s for `doppel actor list` on the 2-core VM)."""

import subprocess
import sys


def test_importing_the_cli_loads_neither_torch_nor_the_body_models():
    code = ("import sys, doppel.cli; heavy = [m for m in ('torch', 'anny', 'cv2', 'mediapipe', 'bpy', 'ray') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"the CLI imports {out} at start-up"

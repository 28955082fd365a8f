"""Make the installed torchvision importable next to the CPU build of torch (install-time fix, idempotent).

open_clip imports torchvision (for its image transforms, pure Python). PyPI's Linux torchvision wheels
are CUDA builds: next to the CPU torch wheel their compiled ops cannot load (they link libtorch_cuda),
and torchvision then fails at import, because `_meta_registrations` registers fake kernels for
`torchvision::nms` and `torchvision::qnms` without checking that the ops exist ("operator
torchvision::nms does not exist"; pytorch/vision#9085 and #9337). Where the CPU build of torchvision
can be installed (https://download.pytorch.org/whl/cpu), install it instead and this script does
nothing. Otherwise it applies the guard that pytorch/vision#9649 proposes to the installed file:
register those two fake kernels only when the compiled ops loaded. Nothing else changes; torchvision's
compiled ops (nms, roi_align, ...) stay unavailable, and hardprompt does not use them.

    python scripts/torchvision_on_cpu_torch.py
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

SYMPTOM = "operator torchvision::nms does not exist"
UNGUARDED = re.compile(r'^@torch\.library\.register_fake\("(torchvision::q?nms)"\)$', re.MULTILINE)
GUARDED = r'@(torch.library.register_fake("\1") if torchvision.extension._has_ops() else (lambda fn: fn))'


def import_error() -> str:
    """The error of `import torchvision` in a fresh interpreter ('' when it imports)."""
    run = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True)
    return "" if run.returncode == 0 else run.stderr.strip()


def main() -> int:
    error = import_error()
    if not error:
        print("torchvision imports; nothing to do")
        return 0
    if SYMPTOM not in error:
        print(f"torchvision does not import, for another reason:\n{error}", file=sys.stderr)
        return 1
    spec = importlib.util.find_spec("torchvision")
    path = Path(next(iter(spec.submodule_search_locations))) / "_meta_registrations.py"
    text = path.read_text()
    patched, count = UNGUARDED.subn(GUARDED, text)
    if count != 2:
        print(f"{path}: expected 2 unguarded fake registrations (nms, qnms), found {count}", file=sys.stderr)
        return 1
    path.write_text(patched)
    error = import_error()
    if error:
        print(f"torchvision still does not import after guarding {path}:\n{error}", file=sys.stderr)
        return 1
    print(f"guarded the nms/qnms fake registrations in {path}: torchvision imports without its compiled ops")
    return 0


if __name__ == "__main__":
    sys.exit(main())

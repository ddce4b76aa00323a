"""Compile protos/mallard/v1/*.proto into shared/protos (run by `make proto`).

grpc_tools emits absolute imports such as ``from mallard.v1 import x_pb2``, which would
collide with the public ``mallard`` SDK package, so the imports are rewritten to
``shared.protos.mallard.v1``. Usage: python protos/generate.py [OUT_DIR]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def generate(out_dir: Path) -> list[Path]:
    sources = sorted((PROTO_ROOT / "mallard" / "v1").glob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(s) for s in sources],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written: list[Path] = []
    for package_dir in (out_dir, out_dir / "mallard", out_dir / "mallard" / "v1"):
        init = package_dir / "__init__.py"
        if not init.exists():
            init.write_text("")
    for path in sorted((out_dir / "mallard" / "v1").glob("*.py*")):
        text = path.read_text()
        text = re.sub(r"^from mallard\.v1 import", "from shared.protos.mallard.v1 import", text, flags=re.M)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "shared" / "protos"
    for p in generate(target):
        print(p.relative_to(target.parent) if p.is_relative_to(target.parent) else p)

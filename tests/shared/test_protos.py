"""The committed stubs are exactly what `make proto` generates from protos/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.helpers.servers import repo_root


def test_generated_stubs_are_up_to_date(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate_protos", repo_root() / "protos" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(tmp_path)
    committed = repo_root() / "shared" / "protos" / "mallard" / "v1"
    fresh = sorted(p.name for p in (tmp_path / "mallard" / "v1").glob("*.py*"))
    assert fresh == sorted(p.name for p in committed.glob("*.py*")), "stub files differ; run `make proto`"
    stale = [
        name for name in fresh if (tmp_path / "mallard" / "v1" / name).read_bytes() != (committed / name).read_bytes()
    ]
    assert not stale, f"stale generated stubs {stale}; run `make proto` and commit the result"

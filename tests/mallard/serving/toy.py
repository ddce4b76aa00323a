"""A toy model saved in the artifact format, for replica and engine tests that need no real build.

`ToyModel.predict` doubles `x`; it sleeps `delay` seconds (a build param) per call, so requests
pile up behind it, raises when a row has `x == -1`, so one bad request can be sent in a batch, and hangs on `x == -2`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOY_MODEL = """
import time

import pandas as pd

import mallard


class ToyModel(mallard.Model):
    def build(self):
        self.factor = 2.0

    def schema(self):
        return mallard.ModelSchema(inputs=[mallard.Field("x", "float")], outputs=[mallard.Field("y", "float")])

    def predict(self, df):
        delay = float(self.params.get("delay", "0"))
        if delay:
            time.sleep(delay)
        if (df["x"] == -2).any():
            time.sleep(3600)  # a predict that never returns
        if (df["x"] == -1).any():
            raise ValueError("x = -1 is not allowed")
        return pd.DataFrame({"y": df["x"] * self.factor})
"""


def save_toy_model(
    root: Path, *, delay: float = 0.0, module: str = "toy_serving_model", source: str = TOY_MODEL
) -> Path:
    """Write a project with the toy model under `root`, train and save it; returns the model directory."""
    project = root / "project"
    (project / "main").mkdir(parents=True, exist_ok=True)
    (project / "mallard.yaml").write_text(f"model:\n  name: toy\n  class: {module}:ToyModel\n")
    (project / "main" / f"{module}.py").write_text(source)
    target = root / "model"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1] + '/main')\n"
        f"from {module} import ToyModel\n"
        "from mallard.state import save_model\n"
        "m = ToyModel(); m.params = {'delay': sys.argv[3]}; m.build()\n"
        "save_model(m, sys.argv[2], project_root=sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(project), str(target), str(delay)], check=True)
    return target

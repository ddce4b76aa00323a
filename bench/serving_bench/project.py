"""The benchmark's model: a scikit-learn HistGradientBoostingClassifier on 20 numeric features,
as a Mallard model project (so the platform can build and deploy it), and the payloads sent to it.

Every peer serves the very same trained artifact: the project is trained once with
`python -m mallard.runtime train` (the builder's own entry point) and the saved classifier is
what the bare FastAPI endpoint, the in-process `predict` and MLflow load. When our stack builds
the project itself, training is seeded and deterministic, and the run checks that every server
answers the same probabilities for the same probe rows.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

FEATURES = [f"f{i:02d}" for i in range(20)]
OUTPUT = "probability"
MODEL_NAME = "bench-hgb"

MALLARD_YAML = f"""model:
  name: {MODEL_NAME}
  class: main.model:BenchModel
build:
  python_requirements: []
  env: {{}}
  params:
    n_samples: 20000
    seed: 11
"""

MODEL_PY = '''"""Benchmark model: HistGradientBoostingClassifier on 20 numeric features (seeded, synthetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

import mallard

FEATURES = [f"f{i:02d}" for i in range(20)]


def make_dataset(n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n_samples, len(FEATURES)))
    logit = x[:, :5].sum(axis=1) - 0.5 * x[:, 5] * x[:, 6] + np.sin(x[:, 7])
    y = (rng.uniform(0, 1, n_samples) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


class BenchModel(mallard.Model):
    """Probability of the positive class from 20 float features."""

    classifier: HistGradientBoostingClassifier

    def build(self) -> None:
        x, y = make_dataset(int(self.params.get("n_samples", "20000")), int(self.params.get("seed", "11")))
        frame = pd.DataFrame(x, columns=FEATURES)  # fitted with feature names: every peer passes a DataFrame
        self.classifier = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(frame, y)
        mallard.log_metric("train_accuracy", float(self.classifier.score(frame, y)))

    def schema(self) -> mallard.ModelSchema:
        return mallard.ModelSchema(
            inputs=[mallard.Field(name, "float") for name in FEATURES],
            outputs=[mallard.Field("probability", "float")],
        )

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        probability = self.classifier.predict_proba(df[FEATURES])[:, 1]
        return pd.DataFrame({"probability": probability}, index=df.index)
'''

REQUIREMENTS = "scikit-learn>=1.3\npandas>=2\nnumpy>=1.26\n"

TEST_PY = """import os

import numpy as np
import pandas as pd

from mallard.state import load_model


def test_probabilities_in_range():
    model = load_model(os.environ["MALLARD_MODEL_DIR"])
    rows = pd.DataFrame(np.zeros((3, 20)), columns=[f"f{i:02d}" for i in range(20)])
    out = model.predict(rows)
    assert ((out["probability"] >= 0) & (out["probability"] <= 1)).all()
"""


def write_project(directory: Path) -> Path:
    """Write the benchmark's model project into `directory` (created)."""
    (directory / "main").mkdir(parents=True)
    (directory / "tests").mkdir()
    (directory / "mallard.yaml").write_text(MALLARD_YAML)
    (directory / "main" / "model.py").write_text(MODEL_PY)
    (directory / "main" / "requirements.txt").write_text(REQUIREMENTS)
    (directory / "tests" / "test_model.py").write_text(TEST_PY)
    return directory


def train(project: Path, output: Path, env: dict[str, str], log: Path) -> Path:
    """Train the project with the builder's entry point; returns the saved model directory."""
    with log.open("ab") as handle:
        subprocess.run(
            [sys.executable, "-m", "mallard.runtime", "train", "--project", str(project), "--output", str(output)],
            env=env,
            cwd=project,
            stdout=handle,
            stderr=handle,
            check=True,
        )
    return output / "model"


def rows(count: int, seed: int = 5) -> list[dict[str, float]]:
    """`count` input rows (the same for every peer)."""
    import numpy as np

    values = np.random.default_rng(seed).normal(0.0, 1.0, (count, len(FEATURES)))
    return [{name: float(v) for name, v in zip(FEATURES, row, strict=True)} for row in values]


def json_records(records: list[dict[str, float]]) -> bytes:
    """The `{"records": [...]}` body our REST gateway and the bare FastAPI endpoint take."""
    return json.dumps({"records": records}).encode()


def mlflow_records(records: list[dict[str, float]]) -> bytes:
    """The body `mlflow models serve` takes on /invocations."""
    return json.dumps({"dataframe_records": records}).encode()


def arrow_ipc(records: list[dict[str, float]]) -> bytes:
    """The rows as one Arrow IPC stream (the gRPC payload and the replica protocol)."""
    import pyarrow as pa

    table = pa.table({name: pa.array([r[name] for r in records], pa.float64()) for name in FEATURES})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def probabilities(answer: Any) -> list[float]:
    """The probabilities out of any peer's JSON answer (for the same-model check)."""
    if isinstance(answer, dict):
        for key in ("predictions", "outputs", "records", "data"):
            if key in answer:
                return probabilities(answer[key])
        if OUTPUT in answer:
            return [float(v) for v in answer[OUTPUT]]
    if isinstance(answer, list):
        out: list[float] = []
        for item in answer:
            if isinstance(item, dict):
                out.append(float(item[OUTPUT]))
            elif isinstance(item, list):
                out.append(float(item[-1]))  # MLflow's predict_proba: [p0, p1]
            else:
                out.append(float(item))
        return out
    raise ValueError(f"cannot find probabilities in {str(answer)[:200]}")

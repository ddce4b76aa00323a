"""The MLflow peer: `mlflow models serve --env-manager local` from a virtualenv the benchmark
installs for itself (`bench/.cache/mlflow-venv`, gitignored; reused while it imports), with the
scikit-learn version of the benchmark's own environment so the very same fitted classifier loads.

The classifier is taken out of the Mallard artifact (its pickled attribute) and saved with
`mlflow.sklearn.save_model(..., pyfunc_predict_fn="predict_proba")` and a signature inferred
from an input example, as the MLflow documentation recommends: MLflow then checks inputs against
the signature on every request, as our gateway checks them against the model's schema.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from bench.serving_bench.project import FEATURES

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV = REPO_ROOT / "bench" / ".cache" / "mlflow-venv"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

EXPORT = """
import pickle, sys
import pandas as pd
import mlflow.sklearn
from mlflow.models import infer_signature

pkl, out, features = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
with open(pkl, "rb") as f:
    clf = pickle.load(f)
example = pd.DataFrame([[0.0] * len(features)], columns=features)
signature = infer_signature(example, clf.predict_proba(example))
mlflow.sklearn.save_model(
    clf, out, pyfunc_predict_fn="predict_proba", signature=signature,
    skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
)
print("saved", out)
"""


def _requirements() -> list[str]:
    return ["mlflow", f"scikit-learn=={importlib.metadata.version('scikit-learn')}"]


def venv_python() -> Path:
    return VENV / "bin" / "python"


def venv_ready() -> bool:
    if not venv_python().exists():
        return False
    probe = "import mlflow, sklearn; print(sklearn.__version__)"
    done = subprocess.run([str(venv_python()), "-c", probe], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == importlib.metadata.version("scikit-learn")


def ensure_venv(log: Path) -> subprocess.Popen[bytes] | None:
    """Start installing MLflow into the cached virtualenv (it takes minutes); None when it is ready."""
    if venv_ready():
        return None
    VENV.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PIP_CERT=CA_BUNDLE, PIP_DISABLE_PIP_VERSION_CHECK="1")
    script = (
        f"test -x {VENV}/bin/python || {sys.executable} -m venv {VENV}; "
        f"{VENV}/bin/python -m pip install -q " + " ".join(f"'{r}'" for r in _requirements())
    )
    with log.open("ab") as handle:
        return subprocess.Popen(["bash", "-c", script], env=env, stdout=handle, stderr=handle)


def export_model(model_dir: Path, out: Path, log: Path) -> Path:
    """Save the artifact's classifier as an MLflow model directory `out`."""
    pkl = model_dir / "attributes" / "classifier.pkl"
    with log.open("ab") as handle:
        subprocess.run(
            [str(venv_python()), "-c", EXPORT, str(pkl), str(out), ",".join(FEATURES)],
            stdout=handle,
            stderr=handle,
            check=True,
        )
    return out


def serve_argv(mlflow_model: Path, port: int) -> list[str]:
    return [
        str(VENV / "bin" / "mlflow"),
        "models",
        "serve",
        "-m",
        str(mlflow_model),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "--env-manager",
        "local",
        "-w",
        "1",
    ]

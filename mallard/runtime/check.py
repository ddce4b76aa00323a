"""`python -m mallard.runtime check`: load a saved model and predict on an example from its schema.

Builders run it in the test phase, before the project's own tests: it proves the artifact loads in
the built environment, `initialize_model()` works, and `predict()` returns one row per input row
with the declared output fields and types.
"""

from __future__ import annotations

from pathlib import Path

from mallard.runtime.failures import INVALID_INPUT, RuntimeFailure, raised
from mallard.schema import ModelSchema, SchemaError
from mallard.state import StateError, load_model, read_manifest

EXAMPLE_ROWS = 3


def check_artifact(artifact: Path) -> None:
    """Raise `RuntimeFailure` unless the model at `artifact` loads and predicts according to its schema."""
    try:
        read_manifest(artifact)
    except StateError as exc:
        raise RuntimeFailure(f"cannot load the model: {exc}", exit_code=INVALID_INPUT) from exc
    try:
        model = load_model(artifact, initialize=False)
    except StateError as exc:  # e.g. the model's code needs a package the environment lacks
        raise RuntimeFailure(f"cannot load the model: {exc}") from exc
    except Exception as exc:
        raise raised("loading the model", exc, root=artifact) from exc
    try:
        model.initialize_model()
    except Exception as exc:
        raise raised("initialize_model()", exc, root=artifact) from exc
    try:
        schema = model.schema()
    except Exception as exc:
        raise raised("schema()", exc, root=artifact) from exc
    if not isinstance(schema, ModelSchema):
        raise RuntimeFailure(f"schema() returned {type(schema).__name__}; it must return a mallard.ModelSchema")
    example = schema.example(EXAMPLE_ROWS)
    try:
        output = model.predict(example.copy())
    except Exception as exc:
        raise raised("predict()", exc, root=artifact) from exc
    import pandas as pd

    if not isinstance(output, pd.DataFrame):
        raise RuntimeFailure(f"predict() returned {type(output).__name__}; it must return a pandas DataFrame")
    if len(output) != EXAMPLE_ROWS:
        raise RuntimeFailure(f"predict() returned {len(output)} rows for {EXAMPLE_ROWS} input rows")
    try:
        schema.validate_outputs(output)
    except SchemaError as exc:
        raise RuntimeFailure(f"predict() output does not match schema(): {exc}") from exc
    fields = ", ".join(f.name for f in schema.outputs) or "no declared outputs"
    print(f"mallard: check passed: predict() on {EXAMPLE_ROWS} example rows returned {fields}", flush=True)

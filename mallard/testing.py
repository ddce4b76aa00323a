"""Helpers for a model project's own tests, which the build runs against the model it just trained.

```python
from mallard.testing import load_built_model


def test_probabilities_are_between_0_and_1():
    model = load_built_model()
    out = model.predict(model.schema().example(5))
    assert out["churn_probability"].between(0, 1).all()
```
"""

from __future__ import annotations

import os

from mallard.model import Model
from mallard.state import load_model

MODEL_DIR_ENV = "MALLARD_MODEL_DIR"


def load_built_model() -> Model:
    """Load the model the current build trained (from `$MALLARD_MODEL_DIR`), ready to predict."""
    directory = os.environ.get(MODEL_DIR_ENV)
    if not directory:
        raise RuntimeError(
            f"{MODEL_DIR_ENV} is not set: load_built_model() works in tests run by a Mallard build; "
            f"to run the tests yourself, train with `python -m mallard.runtime train --project . --output OUT` "
            f"and set {MODEL_DIR_ENV}=OUT/model"
        )
    return load_model(directory)

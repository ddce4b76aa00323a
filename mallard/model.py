"""`mallard.Model`: the one class a data scientist writes.

```python
import mallard
import pandas as pd


class ChurnModel(mallard.Model):
    def build(self) -> None:  # runs once, at build time, inside your network
        self.classifier = train(...)
        mallard.log_metric("accuracy", 0.93)

    def schema(self) -> mallard.ModelSchema:
        return mallard.ModelSchema(inputs=[mallard.Field("age", "int")],
                                   outputs=[mallard.Field("churn_probability", "float")])

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"churn_probability": self.classifier.predict_proba(df)[:, 1]})
```

Every public attribute `build()` sets (`self.classifier` above) is saved in the artifact and
restored before `initialize_model()` runs when the model is loaded; attributes whose names
start with `_` are not saved, which is the place for caches and connections that
`initialize_model()` recreates. The artifact format is described in `mallard.state`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from mallard.schema import ModelSchema


class Model:
    """Base class of a Mallard model; override `build`, `schema` and `predict` (and optionally `initialize_model`).

    The class is instantiated without arguments at build time. At load time `__init__` is not
    called: the saved attributes are restored and then `initialize_model()` runs.
    """

    params: dict[str, str]
    """Build params as text: `build.params` of mallard.yaml overridden by `mallard models build --param k=v`."""

    def __init__(self) -> None:
        self.params = {}

    def build(self) -> None:
        """Train the model. Runs once, at build time; set the trained state as public attributes of `self`."""

    def initialize_model(self) -> None:
        """Prepare a loaded model for predictions (warm caches, open clients); runs after attributes are restored."""

    def schema(self) -> ModelSchema:
        """The model's typed inputs and outputs. Every model must override this."""
        raise NotImplementedError(f"{type(self).__name__} must define schema() returning a mallard.ModelSchema")

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """Predict for the rows of `df` (columns as in `schema().inputs`); return one row per input row."""
        raise NotImplementedError(f"{type(self).__name__} must define predict(df) returning a pandas DataFrame")

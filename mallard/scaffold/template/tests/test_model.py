"""Tests the build runs against the model it just trained (`mallard.testing.load_built_model()`)."""

from __future__ import annotations

import pandas as pd

from mallard.testing import load_built_model


def test_one_probability_per_row() -> None:
    model = load_built_model()
    inputs = model.schema().example(5)

    out = model.predict(inputs)

    assert len(out) == 5
    assert out["churn_probability"].between(0, 1).all()
    assert (out["churn"] == (out["churn_probability"] >= 0.5)).all()


def test_risky_customers_churn_more_than_loyal_ones() -> None:
    model = load_built_model()
    customers = pd.DataFrame(
        {"tenure_months": [60.0, 1.0], "monthly_spend": [30.0, 110.0], "support_calls": [0, 6]},
    )

    loyal, risky = model.predict(customers)["churn_probability"]

    assert loyal < 0.2 < 0.8 < risky

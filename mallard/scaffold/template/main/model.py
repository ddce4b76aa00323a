"""An example Mallard model: predicts customer churn with a scikit-learn logistic regression.

`build()` trains on a synthetic data set generated from a fixed seed, so the example needs no data
and no network. Replace `make_dataset()` with your own data loading.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import mallard

FEATURES = ["tenure_months", "monthly_spend", "support_calls"]


def make_dataset(n_samples: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers who are new, pay a lot and call support often are more likely to churn."""
    rng = np.random.default_rng(seed)
    features = pd.DataFrame(
        {
            "tenure_months": rng.uniform(0, 72, n_samples),
            "monthly_spend": rng.normal(60, 20, n_samples).clip(5, None),
            "support_calls": rng.poisson(1.5, n_samples),
        }
    )
    logit = -0.06 * features["tenure_months"] + 0.03 * features["monthly_spend"] + 0.8 * features["support_calls"] - 1.5
    churned = rng.uniform(0, 1, n_samples) < 1 / (1 + np.exp(-logit))
    return features, churned.astype(int)


class ChurnModel(mallard.Model):
    """Churn probability from three numeric customer features."""

    classifier: Pipeline
    threshold: float

    def build(self) -> None:
        seed = int(self.params.get("seed", "7"))
        n_samples = int(self.params.get("n_samples", "2000"))
        regularization = float(self.params.get("C", "1.0"))
        features, labels = make_dataset(n_samples, seed)
        x_train, x_test, y_train, y_test = train_test_split(
            features[FEATURES].to_numpy(dtype=float), labels, test_size=0.25, random_state=seed
        )
        self.classifier = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, max_iter=1000))
        self.classifier.fit(x_train, y_train)
        self.threshold = float(self.params.get("threshold", "0.5"))

        mallard.log_param("n_samples", n_samples)
        mallard.log_param("C", regularization)
        mallard.log_metric("accuracy", float(self.classifier.score(x_test, y_test)))
        mallard.log_metric("churn_rate", float(labels.mean()))

    def schema(self) -> mallard.ModelSchema:
        return mallard.ModelSchema(
            inputs=[
                mallard.Field("tenure_months", "float", "months since the customer signed up", example=12.0),
                mallard.Field("monthly_spend", "float", "average monthly bill", example=70.0),
                mallard.Field("support_calls", "int", "support calls in the last 90 days", example=2),
            ],
            outputs=[
                mallard.Field("churn_probability", "float", "probability that the customer churns"),
                mallard.Field("churn", "bool", "churn_probability >= threshold"),
            ],
        )

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        probability = self.classifier.predict_proba(df[FEATURES].to_numpy(dtype=float))[:, 1]
        return pd.DataFrame(
            {"churn_probability": probability, "churn": probability >= self.threshold},
            index=df.index,
        )

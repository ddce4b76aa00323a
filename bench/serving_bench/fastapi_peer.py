"""The bare FastAPI peer: the same artifact's `predict` behind one FastAPI route, in its own
uvicorn process (one worker, uvicorn's defaults), the leanest honest endpoint a data scientist
would write: parse the JSON records, build a DataFrame, `model.predict`, answer JSON.

    python -m bench.serving_bench.fastapi_peer --model-dir DIR --port P
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd
import uvicorn
from fastapi import FastAPI, Request

from mallard.state import load_model


def create_app(model_dir: str) -> FastAPI:
    model = load_model(model_dir)
    app = FastAPI()

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        body = await request.json()
        frame = pd.DataFrame.from_records(body["records"])
        return {"predictions": model.predict(frame).to_dict(orient="records")}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(args.model_dir), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

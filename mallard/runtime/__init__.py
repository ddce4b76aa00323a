"""Entry points that run inside a build environment, with the build environment's Python.

```
python -m mallard.runtime train --project DIR --output OUT [--params-json FILE]
python -m mallard.runtime check --artifact OUT/model
```

`train` imports the project's model class, runs `build()` with a tracker active, saves the model
to `OUT/model` (format: `mallard.state`) and writes `OUT/result.json` (`{"params", "metrics",
"model_class", "duration_seconds"}`; `params` are the build params plus those `build()` logged).
`check` loads an artifact and predicts on an example generated from its schema.

Exit codes: 0 success; 1 the model failed (its code does not import, `build()`,
`initialize_model()` or `predict()` raised, the output does not match the schema, the state
cannot be saved, the artifact's code cannot be imported); 2 the project, config, arguments or
artifact format are invalid. On failure the last line of stderr states the cause, after a short
traceback of the model's own frames.
"""

from mallard.runtime.cli import main

__all__ = ["main"]

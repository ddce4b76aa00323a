"""`make demo`: walk through the running dev stack with the real CLI and print what happened.

Runs after `mallard dev up --detach`; each step is a `mallard` command a user could type.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from rich.console import Console

from mallard.dev.demo_features import write_entities, write_feature_repo
from mallard.dev.stack import DevStack, default_home

console = Console()


def mallard(
    *args: str, check: bool = True, quiet: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a CLI command as a user would; `quiet` runs it for its --json output only."""
    if not quiet:
        console.print(f"\n[bold cyan]$ mallard {' '.join(args)}[/bold cyan]", highlight=False)
    result = subprocess.run([sys.executable, "-m", "mallard", *args], capture_output=True, text=True, timeout=timeout)
    if not quiet:
        sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if check and result.returncode != 0:
        raise SystemExit(f"demo step failed: mallard {' '.join(args)} (exit {result.returncode})")
    return result


def main() -> int:
    stack = DevStack(default_home())
    info = stack.info()
    if info is None or not stack.healthy():
        console.print("[red]the dev stack is not running; start it with `mallard dev up --detach`[/red]")
        return 1
    agent_id = info["agent_id"]
    console.rule("Mallard demo: the hybrid spine")
    console.print("A control plane (API, gateway, scheduler) and one agent enrolled over mTLS are running.")

    mallard("agents", "list")
    listed = json.loads(mallard("agents", "list", "--json", quiet=True).stdout)
    online = [a for a in listed if a["id"] == agent_id and a["status"] == "online"]
    if not online:
        raise SystemExit(f"agent {agent_id} is not online")

    started = time.perf_counter()
    mallard("agents", "describe", agent_id)
    elapsed_ms = (time.perf_counter() - started) * 1000
    console.print(f"[dim](describe round trip through the gateway and back: {elapsed_ms:.0f} ms incl. CLI start)[/dim]")

    projects = json.loads(mallard("projects", "list", "--json", quiet=True).stdout)
    if not any(p["name"] == "demo" for p in projects):
        mallard("projects", "create", "demo", "--description", "created by make demo")
    mallard("projects", "list")
    mallard("agents", "token", "list")

    console.rule("Build a model inside the data plane")
    project_dir = stack.home / "demo-model"
    if not (project_dir / "mallard.yaml").exists():
        mallard("models", "init", str(project_dir), "--name", "churn")
    models = json.loads(mallard("models", "list", "--json", quiet=True).stdout)
    if not any(m["name"] == "churn" for m in models):
        mallard("models", "create", "churn", "--project", "demo")
    started = time.perf_counter()
    # A first build installs scikit-learn into a fresh environment: allow for a slow network or machine.
    mallard("models", "build", str(project_dir), "--model", "churn", "--tag", "demo", "--follow", timeout=900)
    console.print(f"[dim](build took {time.perf_counter() - started:.1f} s end to end)[/dim]")
    mallard("builds", "list", "--model", "churn", "--limit", "5")

    console.rule("Serve it: a real-time endpoint in the data plane")
    built = json.loads(
        mallard("builds", "list", "--model", "churn", "--status", "SUCCEEDED", "--json", quiet=True).stdout
    )
    if not built:
        raise SystemExit("no SUCCEEDED build of churn to deploy")
    mallard("models", "deploy", "realtime", "--model", "churn", "--build", built[0]["id"], "--wait", timeout=600)
    mallard("deployments", "list")
    started = time.perf_counter()
    mallard("models", "predict", "churn", "--example")
    console.print(f"[dim](REST prediction incl. CLI start: {(time.perf_counter() - started) * 1000:.0f} ms)[/dim]")
    mallard("models", "predict", "churn", "--json", '{"tenure_months": 3, "monthly_spend": 95.5, "support_calls": 4}',
            "--grpc")  # fmt: skip
    console.rule("Every prediction is in your data lake")
    mallard(
        "lake",
        "query",
        "SELECT timestamp, request_id, variation, status, round(latency_ms, 2) AS latency_ms "
        "FROM predictions WHERE model = 'churn' ORDER BY timestamp DESC LIMIT 5",
    )

    console.rule("Features: one definition for training and serving")
    repo = write_feature_repo(stack.home / "demo-features")
    mallard("features", "apply", str(repo), "--project", "demo")
    mallard("features", "materialize", "driver_stats", timeout=600)
    mallard("features", "get-online", "driver_stats", "--key", "driver_id=1", "--key", "driver_id=2")
    entities = write_entities(stack.home / "demo-entities.parquet")
    training = stack.home / "demo-training-set.parquet"
    mallard(
        "features", "get-historical", "--entities", str(entities),
        "--features", "driver_stats:trips_today,driver_stats:rating", "--out", str(training),
    )  # fmt: skip
    import pyarrow.parquet as pq

    console.print("point in time: each row sees only values known at its timestamp and within the TTL")
    console.print(pq.read_table(training).to_pandas().to_string(index=False), highlight=False)
    mallard("features", "list")

    console.rule("Where to look")
    console.print(f"API + OpenAPI:   {info['api_url']}/docs", highlight=False)
    console.print(f"data plane:      {info['data_plane_url']}/v1/health", highlight=False)
    console.print(f"predictions:     POST {info['data_plane_url']}/v1/models/churn/predict", highlight=False)
    console.print(f"gRPC:            {info.get('data_plane_grpc', '')} (mallard.v1.PredictionService)", highlight=False)
    console.print(f"gateway:         {info['gateway']} (mTLS), enrollment {info['enroll']}", highlight=False)
    console.print(f"dev.json:        {stack.dev_json}", highlight=False)
    console.print(f"logs:            {stack.logs}", highlight=False)
    console.print("the stack stays up; stop it with: mallard dev down", highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

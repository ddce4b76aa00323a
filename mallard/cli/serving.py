"""`mallard models deploy realtime|batch|streaming` and `mallard models undeploy`.

The control plane stores the desired state and sends it to the agent that built the build;
the agent reconciles and reports back (`mallard deployments show`).
"""

from __future__ import annotations

import time
from typing import Any

import typer

from mallard.cli.deployments import ready as _ready
from mallard.cli.output import console, err_console, handle_errors, print_json, print_table
from mallard.client import ApiError, ControlPlaneClient
from shared.serving import DEFAULT_BATCH_ROWS

deploy_app = typer.Typer(
    help="Deploy a build: realtime endpoint, batch job or streaming consumer.", no_args_is_help=True
)
JSON = typer.Option(False, "--json", help="Print JSON.")
MODEL = typer.Option(..., "--model", "-m", help="Registered model name or id.")
BUILD = typer.Option(..., "--build", "-b", help="A SUCCEEDED build of the model.")
REPLICAS = typer.Option(
    None, "--replicas", min=1, max=16, help="Model server replicas for this variation (default: unchanged, new: 1)."
)
VARIATION = typer.Option("default", "--variation", help="Serve the build as this variation (A/B, canary).")
WEIGHT = typer.Option(
    None, "--weight", min=0, max=100, help="Relative traffic weight of the variation (default: unchanged, new: 100)."
)
SHADOW = typer.Option(False, "--shadow", help="Mirror traffic to it: answers are logged, never returned.")
RUNTIME = typer.Option(None, "--runtime", help="local (a process in the build's virtualenv) or docker.")
LOGGING = typer.Option(None, "--logging/--no-logging", help="Log predictions to the inference lake (default on).")
TIMEOUT_MS = typer.Option(None, "--timeout-ms", min=1, max=600_000, help="Per-request prediction timeout.")
WAIT = typer.Option(
    False, "--wait", help="Wait until the agent reports this revision running (batch: finished) or failed."
)
WAIT_TIMEOUT = typer.Option(300.0, "--wait-timeout", help="Seconds --wait waits.")
SETTLED = {"RUNNING", "SUCCEEDED", "FAILED", "STOPPED"}
FINISHED = {"SUCCEEDED", "FAILED", "STOPPED"}  # a batch job is waited for until it ends


def _deploy(kind: str, body: dict[str, Any], *, wait: bool, wait_timeout: float, as_json: bool) -> None:
    if body.get("runtime") not in (None, "local", "docker"):
        raise typer.BadParameter("must be local or docker", param_hint="--runtime")
    with ControlPlaneClient() as cp:
        deployment = cp.post("/deployments", {"kind": kind, **{k: v for k, v in body.items() if v is not None}})
        if not as_json:
            variation = body["variation"]
            console.print(
                f"deployment [bold]{deployment['name']}[/bold] ({deployment['id']}) revision "
                f"{deployment['revision']}: build {body['build']} as variation {variation!r}, sent to agent "
                f"{deployment['agent_id']}",
                highlight=False,
            )
        if wait:
            settled = FINISHED if kind == "batch" else SETTLED
            deployment = wait_for_revision(
                cp, deployment["id"], deployment["revision"], timeout=wait_timeout, settled=settled
            )
    if as_json:
        print_json(deployment)
    elif wait:
        message = f": {deployment['message']}" if deployment.get("message") else ""
        console.print(f"{deployment['state']}{message} ({_ready(deployment)} replicas ready)", highlight=False)
    if wait and deployment["state"] == "FAILED":
        raise typer.Exit(1)


def wait_for_revision(
    cp: ControlPlaneClient, deployment_id: str, revision: int, *, timeout: float, settled: set[str] = SETTLED
) -> dict[str, Any]:
    """Poll until the agent reports `revision` (or a later one) in a `settled` state; ApiError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        deployment: dict[str, Any] = cp.get(f"/deployments/{deployment_id}")
        if deployment["observed_revision"] >= revision and deployment["state"] in settled:
            return deployment
        if time.monotonic() > deadline:
            raise ApiError(
                f"deployment {deployment_id} did not report revision {revision} settled within {timeout:.0f}s "
                f"(state {deployment['state']}, observed revision {deployment['observed_revision']}); "
                "see `mallard deployments show`"
            )
        time.sleep(0.5)


@deploy_app.command("realtime")
@handle_errors
def deploy_realtime(
    model: str = MODEL,
    build: str = BUILD,
    replicas: int | None = REPLICAS,
    variation: str = VARIATION,
    weight: int | None = WEIGHT,
    shadow: bool = SHADOW,
    runtime: str | None = RUNTIME,
    logging: bool | None = LOGGING,
    timeout_ms: int | None = TIMEOUT_MS,
    wait: bool = WAIT,
    wait_timeout: float = WAIT_TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Serve a build as a real-time endpoint (REST and gRPC on the agent's data plane)."""
    body = dict(model=model, build=build, replicas=replicas, variation=variation, weight=weight, shadow=shadow)
    body.update(runtime=runtime, logging=logging, timeout_ms=timeout_ms)
    _deploy("realtime", body, wait=wait, wait_timeout=wait_timeout, as_json=as_json)


@deploy_app.command("batch")
@handle_errors
def deploy_batch(
    model: str = MODEL,
    build: str = BUILD,
    input: str = typer.Option(..., "--input", help="Parquet file, directory or s3://bucket/prefix."),
    output: str = typer.Option(..., "--output", help="Directory or s3://bucket/prefix for the part files."),
    batch_rows: int = typer.Option(
        DEFAULT_BATCH_ROWS, "--batch-rows", min=1, help="Rows per batch: one predict() call and one part file."
    ),
    replicas: int | None = REPLICAS,
    runtime: str | None = RUNTIME,
    logging: bool | None = LOGGING,
    wait: bool = WAIT,
    wait_timeout: float = WAIT_TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Score a Parquet dataset in the data plane; resumable, progress in `mallard deployments show`."""
    body: dict[str, Any] = dict(model=model, build=build, replicas=replicas, variation="default")
    body.update(runtime=runtime, logging=logging, batch={"input": input, "output": output, "batch_rows": batch_rows})
    _deploy("batch", body, wait=wait, wait_timeout=wait_timeout, as_json=as_json)


@deploy_app.command("streaming")
@handle_errors
def deploy_streaming(
    model: str = MODEL,
    build: str = BUILD,
    redis_url: str = typer.Option(..., "--redis-url", help="redis:// URL reachable from the agent."),
    input_stream: str = typer.Option(..., "--input-stream"),
    output_stream: str = typer.Option(..., "--output-stream"),
    group: str = typer.Option(..., "--group", help="Consumer group (created when missing)."),
    replicas: int | None = REPLICAS,
    runtime: str | None = RUNTIME,
    logging: bool | None = LOGGING,
    wait: bool = WAIT,
    wait_timeout: float = WAIT_TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Consume a Redis Stream, predict, and write the answers to another stream (at least once)."""
    streaming = {"redis_url": redis_url, "input_stream": input_stream, "output_stream": output_stream, "group": group}
    body: dict[str, Any] = dict(model=model, build=build, replicas=replicas, variation="default")
    body.update(runtime=runtime, logging=logging, streaming=streaming)
    _deploy("streaming", body, wait=wait, wait_timeout=wait_timeout, as_json=as_json)


@handle_errors
def undeploy(
    model: str = typer.Argument(..., help="Registered model name or id."),
    variation: str | None = typer.Option(None, "--variation", help="Remove only this variation."),
    kind: str | None = typer.Option(None, "--kind", help="Only the deployment of this kind (default: every kind)."),
    as_json: bool = JSON,
) -> None:
    """Stop a model's deployments, or remove one variation while the others keep serving."""
    with ControlPlaneClient() as cp:
        active = cp.get("/deployments", model=model, kind=kind)
        if variation:
            active = [d for d in active if any(v["name"] == variation for v in d["variations"])]
        if not active:
            what = f" with a variation {variation!r}" if variation else ""
            raise ApiError(f"model {model!r} has no active deployment{what}; see `mallard deployments list`")
        done = [cp.delete(f"/deployments/{d['id']}" + (f"?variation={variation}" if variation else "")) for d in active]
    if as_json:
        print_json(done)
        return
    for d in done:
        what = f"variation {variation!r} removed from" if variation else "stopping"
        err_console.print(f"{what} {d['name']} ({d['id']}), revision {d['revision']}", highlight=False)
    print_table(done, ["id", "name", "kind", "revision", "desired", "state"], title="deployments")


def register(models_app: typer.Typer) -> None:
    """Add `deploy`, `undeploy` and `predict` to `mallard models`."""
    from mallard.cli.predict import predict

    models_app.add_typer(deploy_app, name="deploy")
    models_app.command("undeploy")(undeploy)
    models_app.command("predict")(predict)

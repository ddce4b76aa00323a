"""Our stack, as a user runs it: the control-plane API and gateway, one enrolled agent, the
benchmark project built by the agent's local builder through the CLI (`mallard models build
--follow`), and realtime deployments made through the control plane's deployments API, which
sends them to the agent as `deployment.apply` commands. The agent's engine starts the replicas
(local runtime, the build's virtualenv); predictions go to the agent's data-plane REST and gRPC
fronts with a data-plane token from the control plane, exactly as `mallard models predict` does.

The same project is built twice, as two models: `bench-hgb` deployed with lake logging on and
`bench-hgb-nolog` with it off, so both are measured side by side in every round. Training is
seeded, so both builds (and the peers' artifact) are the same model; the run checks the answers.

The agent (and so every replica it starts) is pinned to the servers' core once the builds are
done; the control plane to the load generator's core (it is idle while predictions run).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.build_timing.runs import cli_build
from bench.build_timing.stack import Agent, Stack
from bench.fleet.processes import Children, free_port
from bench.runlog import log as _log
from bench.serving_bench.batch import output_parts, steady_rate
from bench.serving_bench.measure import CLIENT_CPU, SERVER_CPU, Target, cpus_available, tree
from bench.serving_bench.peers import JSON, bodies
from bench.serving_bench.project import MODEL_NAME, arrow_ipc, json_records, probabilities, rows
from bench.serving_bench.report import OURS_GRPC, OURS_GRPC_NOLOG, OURS_REST, OURS_REST_NOLOG

NOLOG_MODEL = f"{MODEL_NAME}-nolog"
GRPC_METHOD = "/mallard.v1.PredictionService/Predict"


def pin_tree(pid: int, cpu: int) -> None:
    """Set the affinity of every thread of `pid` and of its descendants (children inherit it)."""
    if not cpus_available():
        return
    for process in tree(pid):
        try:
            for task in Path(f"/proc/{process}/task").iterdir():
                os.sched_setaffinity(int(task.name), {cpu})
        except (FileNotFoundError, ProcessLookupError):
            continue


class Ours:
    """Start our stack, deploy, and hand out the targets; `batch()` runs a batch deployment."""

    def __init__(self, work: Path, children: Children, logs: Path, *, lake_off: bool = True) -> None:
        self.work, self.children, self.logs = work, children, logs
        self.models = [(MODEL_NAME, True)] + ([(NOLOG_MODEL, False)] if lake_off else [])
        self.ready = False
        self.targets: list[Target] = []
        self.stack: Stack | None = None
        self.agent: Agent | None = None
        self.builds: dict[str, str] = {}

    def start(self, project: Path, sizes: list[int]) -> str | None:
        """Bring everything up; returns why ours cannot be measured (None when it can)."""
        try:
            self._start(project, sizes)
        except Exception as exc:
            _log(f"ours: not measured: {exc}")
            return f"{type(exc).__name__}: {exc}"[:400]
        self.ready = True
        return None

    def _api(self) -> httpx.Client:
        assert self.stack is not None
        return self.stack.client()

    def _start(self, project: Path, sizes: list[int]) -> None:
        _log("ours: starting the control plane and an agent")
        stack = Stack(self.work / "control-plane", self.children)
        self.stack = stack
        stack.start()
        for child in self.children.started:
            pin_tree(child.pid, CLIENT_CPU)
        stack.register_model("bench", MODEL_NAME)
        with self._api() as api:
            for model, _logging in self.models[1:]:
                _ok(api.post("/models", json={"name": model, "project": "bench"}))
        grpc_port = free_port()
        agent = stack.start_agent(
            "agent", {"MALLARD_AGENT_DATA_PLANE_GRPC_PORT": str(grpc_port), "OMP_NUM_THREADS": "1"}
        )
        self.agent = agent
        for model, _logging in self.models:
            _log(f"ours: building {model} with the local builder (mallard models build --follow)")
            timing = cli_build(
                builder="local",
                kind="bench",
                project=project,
                model=model,
                env=stack.cli_env(agent),
                logs=self.logs,
                params={},
            )
            self.builds[model] = timing.build_id
        pin_tree(agent.child.pid, SERVER_CPU)
        for model, logging in self.models:
            self._deploy({"model": model, "kind": "realtime", "build": self.builds[model], "logging": logging})
        token = self._token()
        auth = {"Authorization": f"Bearer {token}"}
        names = {MODEL_NAME: (OURS_REST, OURS_GRPC), NOLOG_MODEL: (OURS_REST_NOLOG, OURS_GRPC_NOLOG)}
        for model, _logging in self.models:
            rest_name, grpc_name = names[model]
            path = f"/v1/models/{model}/predict"
            payloads = bodies(json_records, sizes)
            url = agent.data_plane_url + path
            probe = _json_probe(url, payloads[1], JSON | auth)
            self.targets.append(
                Target(
                    rest_name,
                    "http",
                    agent.port,
                    payloads,
                    path,
                    headers=JSON | auth,
                    server_pid=agent.child.pid,
                    probe=probe,
                )
            )
            grpc_target = self._grpc_target(grpc_name, model, grpc_port, sizes, auth)
            if grpc_target is not None:
                self.targets.append(grpc_target)

    def _deploy(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._api() as api:
            deployment = _ok(api.post("/deployments", json=body))
        deployment_id = deployment["id"]
        want = "SUCCEEDED" if body["kind"] == "batch" else "RUNNING"
        _log(f"ours: deployed {body['model']} ({body['kind']}) as {deployment_id}; waiting for {want}")
        deadline = time.monotonic() + 300
        with self._api() as api:
            while time.monotonic() < deadline:
                view = _ok(api.get(f"/deployments/{deployment_id}"))
                state = view.get("state")
                if state == want:
                    return dict(view)
                if state in ("FAILED", "STOPPED"):
                    raise RuntimeError(f"deployment {deployment_id} went {state}: {view.get('message')}")
                assert self.agent is not None
                if not self.agent.child.alive():
                    raise RuntimeError(f"the agent exited; its log ends with:\n{self.agent.child.tail()}")
                time.sleep(0.1)
        raise RuntimeError(f"deployment {deployment_id} not {want} after 300 s: {view}")

    def _token(self) -> str:
        with self._api() as api:
            return str(_ok(api.post("/data-plane/token"))["token"])

    def _grpc_target(self, name: str, model: str, port: int, sizes: list[int], auth: dict[str, str]) -> Target | None:
        try:
            from shared.protos.mallard.v1 import prediction_pb2
        except ImportError:
            return None
        messages = {}
        for n in sorted({1, *sizes}):
            request = prediction_pb2.PredictRequest(model=model, arrow_ipc=arrow_ipc(rows(n)))  # type: ignore[attr-defined]
            messages[n] = request.SerializeToString()
        return Target(
            name,
            "grpc",
            port,
            messages,
            method=GRPC_METHOD,
            headers=auth,
            server_pid=self.agent.child.pid if self.agent else None,
        )

    def batch(self, parquet: Path, count: int, notes: list[str]) -> dict[str, Any]:
        """A batch deployment over `parquet`: end-to-end wall and the steady rate between part files."""
        output = self.work / f"batch-output-{uuid.uuid4().hex[:6]}"
        began = time.monotonic()
        try:
            view = self._deploy(
                {
                    "model": MODEL_NAME,
                    "kind": "batch",
                    "build": self.builds[MODEL_NAME],
                    "batch": {"input": str(parquet), "output": str(output)},
                }
            )
        except Exception as exc:
            notes.append(f"ours batch: not measured: {exc}"[:400])
            return {}
        wall = time.monotonic() - began
        parts = output_parts(output)
        written = sum(r for _, r in parts)
        if written != count:
            notes.append(f"ours batch: the output holds {written} rows, the input {count}")
        result: dict[str, Any] = {
            "ours_wall_s": round(wall, 2),
            "ours_rows_per_s_end_to_end": count / wall,
            "parts": len(parts),
            "rows_done": view.get("rows_done"),
        }
        steady = steady_rate(parts)
        if steady is not None:
            result["ours_rows_per_s"] = steady
        else:
            notes.append("ours batch: too few part files for a steady rate; the end-to-end rate is used")
            result["ours_rows_per_s"] = count / wall
        return result


def _json_probe(url: str, body: bytes, headers: dict[str, str]) -> Callable[[], list[float]]:
    def probe() -> list[float]:
        return probabilities(httpx.post(url, content=body, headers=headers, timeout=10).raise_for_status().json())

    return probe


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json()

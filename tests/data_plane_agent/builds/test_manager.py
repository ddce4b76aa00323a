"""BuildManager with a scripted builder (real subprocesses): phases, events, artifacts, logs,
concurrency, cancel in every phase, crash recovery, shutdown."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import threading
import time

import pytest

from data_plane_agent.builds import BuildManager
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore, artifact_key, build_log_key
from shared import builds as contract
from shared.errors import InvalidInput
from tests.data_plane_agent.builds.conftest import ManagerFactory
from tests.data_plane_agent.builds.helpers import (
    ScriptedBuilder,
    events,
    make_context,
    pid_alive,
    simple_project,
    spec,
    wait_final,
    wait_phase,
)

SLEEP = "import time; print('working', flush=True); time.sleep(60)"


def test_a_build_walks_every_phase_and_publishes_a_content_addressed_artifact(
    make_manager: ManagerFactory, store: LocalObjectStore, outbox: Outbox
) -> None:
    manager = make_manager({"local": ScriptedBuilder()})
    digest = make_context(store, simple_project())
    answer = manager.submit(spec("bld_ok", digest))
    assert answer == {"accepted": True, "build_id": "bld_ok", "status": "QUEUED"}
    assert wait_final(manager, "bld_ok") == "SUCCEEDED"

    seen = events(outbox, "bld_ok")
    phases = [(p["phase"], p["state"]) for t, p in seen if t == contract.PHASE_EVENT]
    assert phases == [(ph.value, state) for ph in contract.PHASES for state in ("started", "succeeded")]
    kind, finished = seen[-1]
    assert kind == contract.FINISHED_EVENT
    assert finished["status"] == "SUCCEEDED" and finished["failed_phase"] is None
    assert finished["error_summary"] is None
    assert finished["params"] == {"alpha": "2"} and finished["metrics"] == {"accuracy": 0.9}
    assert finished["artifact_uri"] == "mallard-store://" + artifact_key(finished["artifact_digest"])
    assert finished["duration_seconds"] > 0
    # Only metadata crosses: nothing in any event is model bytes or log text.
    assert all("trained" not in json.dumps(p) and "www" not in json.dumps(p) for _, p in seen)

    with store.open_read(artifact_key(finished["artifact_digest"])) as handle:
        blob = handle.read()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert {m.mtime for m in tar.getmembers()} == {0}
    assert names == sorted(names)
    assert {"manifest.json", "model/manifest.json", "model/weights.bin", "project/mallard.yaml"} <= set(names)
    assert {"project/main/model.py", "project/tests/test_model.py"} <= set(names)
    assert manifest["build_id"] == "bld_ok" and manifest["context_digest"] == digest
    assert manifest["builder"] == "local" and manifest["metrics"] == {"accuracy": 0.9}
    assert gzip.decompress(blob)[:100]  # a valid gzip stream

    view = manager.get("bld_ok").view()  # type: ignore[union-attr]
    assert view["status"] == "SUCCEEDED" and view["artifact_digest"] == finished["artifact_digest"]
    assert [p["phase"] for p in view["phases"]] == [p.value for p in contract.PHASES]
    assert all(p["state"] == "succeeded" and p["finished_at"] for p in view["phases"])
    with store.open_read(build_log_key("bld_ok")) as handle:
        log_text = handle.read().decode()
    assert "==> train" in log_text and "trained" in log_text and "build SUCCEEDED" in log_text


def test_a_redelivered_run_is_not_run_twice_and_bad_specs_are_refused(
    make_manager: ManagerFactory, store: LocalObjectStore, outbox: Outbox
) -> None:
    manager = make_manager({"local": ScriptedBuilder()})
    digest = make_context(store, simple_project())
    manager.submit(spec("bld_once", digest))
    wait_final(manager, "bld_once")
    again = manager.submit(spec("bld_once", digest))
    assert again == {"accepted": True, "build_id": "bld_once", "status": "SUCCEEDED"}
    assert sum(1 for t, _ in events(outbox, "bld_once") if t == contract.FINISHED_EVENT) == 1
    with pytest.raises(InvalidInput, match="another tenant"):
        manager.submit(spec("bld_x", digest, tenant_id="ten_other"))
    with pytest.raises(InvalidInput, match="context_digest"):
        manager.submit(spec("bld_x", "sha256:nothex"))
    with pytest.raises(InvalidInput, match="unknown builder"):
        manager.submit(spec("bld_x", digest, builder="kubernetes"))
    with pytest.raises(InvalidInput, match="invalid build id"):
        manager.submit(spec("../etc", digest))


@pytest.mark.parametrize(
    ("phase", "script", "expected"),
    [
        ("resolve_dependencies", "import sys; sys.exit('ERROR: No matching distribution for nope==1')", "nope==1"),
        ("train", "raise ValueError('the training data is empty')", "ValueError: the training data is empty"),
        ("test", "import sys; print('FAILED tests/test_model.py::test_ok'); sys.exit(1)", "exit code 1"),
    ],
)
def test_a_failing_step_fails_the_build_at_its_phase_with_a_summary(
    make_manager: ManagerFactory, store: LocalObjectStore, outbox: Outbox, phase: str, script: str, expected: str
) -> None:
    manager = make_manager({"local": ScriptedBuilder({phase: script})})
    digest = make_context(store, simple_project())
    manager.submit(spec("bld_bad", digest))
    assert wait_final(manager, "bld_bad") == "FAILED"
    finished = events(outbox, "bld_bad")[-1][1]
    assert finished["failed_phase"] == phase
    assert expected in finished["error_summary"]
    assert len(finished["error_summary"]) <= contract.ERROR_SUMMARY_MAX
    assert finished["artifact_digest"] is None
    states = [(p["phase"], p["state"]) for t, p in events(outbox, "bld_bad") if t == contract.PHASE_EVENT]
    assert states[-1] == (phase, "failed")
    assert not list(store.list("artifacts/"))


def test_a_missing_or_broken_context_fails_the_fetch_phase(
    make_manager: ManagerFactory, store: LocalObjectStore, outbox: Outbox
) -> None:
    manager = make_manager({"local": ScriptedBuilder()})
    manager.submit(spec("bld_nocontext", "sha256:" + "a" * 64))
    assert wait_final(manager, "bld_nocontext") == "FAILED"
    finished = events(outbox, "bld_nocontext")[-1][1]
    assert finished["failed_phase"] == "fetch_context"
    assert "not in this agent's store" in finished["error_summary"]

    no_yaml = make_context(store, {"main/model.py": "x = 1\n"})
    manager.submit(spec("bld_noyaml", no_yaml))
    assert wait_final(manager, "bld_noyaml") == "FAILED"
    assert "no mallard.yaml" in events(outbox, "bld_noyaml")[-1][1]["error_summary"]


def test_at_most_max_concurrent_builds_run_at_once(make_manager: ManagerFactory, store: LocalObjectStore) -> None:
    manager = make_manager({"local": ScriptedBuilder({"train": SLEEP})}, max_concurrent=2)
    digest = make_context(store, simple_project())
    for i in range(3):
        manager.submit(spec(f"bld_c{i}", digest))
    wait_phase(manager, "bld_c0", "train")
    wait_phase(manager, "bld_c1", "train")
    time.sleep(0.5)  # give a third worker (if there wrongly were one) the chance to start
    assert manager.get("bld_c2").status == "QUEUED"  # type: ignore[union-attr]
    manager.cancel("bld_c0")
    wait_phase(manager, "bld_c2", "train")
    for i in (1, 2):
        manager.cancel(f"bld_c{i}")
        assert wait_final(manager, f"bld_c{i}") == "CANCELLED"


@pytest.mark.parametrize("phase", ["resolve_dependencies", "train", "test"])
def test_cancel_stops_the_running_step_and_its_children(
    make_manager: ManagerFactory, store: LocalObjectStore, outbox: Outbox, phase: str
) -> None:
    # The step starts a child that would outlive a plain kill of the step's own process.
    script = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('child', child.pid, flush=True); time.sleep(60)"
    )
    manager = make_manager({"local": ScriptedBuilder({phase: script})})
    digest = make_context(store, simple_project())
    manager.submit(spec("bld_cancel", digest))
    wait_phase(manager, "bld_cancel", phase)
    pid = manager.get("bld_cancel").pid  # type: ignore[union-attr]
    assert pid is not None and pid_alive(pid)
    deadline = time.monotonic() + 10
    child_pid = None
    while child_pid is None and time.monotonic() < deadline:
        data, _, _ = manager.read_log("bld_cancel") or (b"", 0, "")
        for line in data.decode().splitlines():
            if line.startswith("child "):
                child_pid = int(line.split()[1])
        time.sleep(0.05)
    assert child_pid is not None and pid_alive(child_pid)

    started = time.monotonic()
    assert manager.cancel("bld_cancel")["cancelled"] is True
    assert wait_final(manager, "bld_cancel", timeout=10) == "CANCELLED"
    assert time.monotonic() - started < 5
    assert not pid_alive(pid) and not pid_alive(child_pid)
    seen = events(outbox, "bld_cancel")
    assert (seen[-2][1]["phase"], seen[-2][1]["state"]) == (phase, "cancelled")
    assert seen[-1][1]["status"] == "CANCELLED" and seen[-1][1]["failed_phase"] == phase
    assert manager.cancel("bld_cancel") == {"build_id": "bld_cancel", "status": "CANCELLED", "cancelled": False}


def test_cancel_while_queued_ends_it_without_phases(
    make_manager: ManagerFactory, store: LocalObjectStore, outbox: Outbox
) -> None:
    manager = make_manager({"local": ScriptedBuilder({"train": SLEEP})}, max_concurrent=1)
    digest = make_context(store, simple_project())
    manager.submit(spec("bld_first", digest))
    manager.submit(spec("bld_queued", digest))
    wait_phase(manager, "bld_first", "train")
    assert manager.cancel("bld_queued")["status"] == "CANCELLED"
    assert events(outbox, "bld_queued") == [
        (
            contract.FINISHED_EVENT,
            {
                "build_id": "bld_queued",
                "status": "CANCELLED",
                "failed_phase": None,
                "error_summary": "cancelled while queued",
                "params": {},
                "metrics": {},
                "artifact_digest": None,
                "artifact_uri": None,
                "image": None,
                "duration_seconds": 0.0,
            },
        )
    ]
    manager.cancel("bld_first")
    wait_final(manager, "bld_first")
    time.sleep(0.3)
    assert manager.get("bld_queued").status == "CANCELLED"  # type: ignore[union-attr]
    assert len(events(outbox, "bld_queued")) == 1  # the worker never started it


def test_a_cancel_that_overtakes_its_run_command_wins(
    make_manager: ManagerFactory, store: LocalObjectStore, outbox: Outbox
) -> None:
    manager = make_manager({"local": ScriptedBuilder()})
    assert manager.cancel("bld_early")["status"] == "CANCELLED"
    digest = make_context(store, simple_project())
    assert manager.submit(spec("bld_early", digest)) == {
        "accepted": False,
        "build_id": "bld_early",
        "status": "CANCELLED",
    }
    assert [t for t, _ in events(outbox, "bld_early")] == [contract.FINISHED_EVENT]


def test_logs_can_be_followed_by_offset_while_the_build_runs(
    make_manager: ManagerFactory, store: LocalObjectStore
) -> None:
    script = "import time\nfor i in range(30):\n    print(f'line {i}', flush=True); time.sleep(0.03)"
    manager = make_manager({"local": ScriptedBuilder({"test": script})})
    digest = make_context(store, simple_project())
    manager.submit(spec("bld_follow", digest))
    collected, offset, status, polls = b"", 0, "QUEUED", 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = manager.read_log("bld_follow", offset, limit=64)
        assert found is not None
        data, offset, status = found
        collected += data
        polls += 1
        if status in ("SUCCEEDED", "FAILED") and not data:
            break
        time.sleep(0.01)
    assert status == "SUCCEEDED" and polls > 5
    with store.open_read(build_log_key("bld_follow")) as handle:
        assert collected == handle.read()
    assert all(f"line {i}\n".encode() in collected for i in range(30))
    assert manager.read_log("bld_unknown") is None


def test_shutdown_fails_running_builds_and_keeps_queued_ones_for_the_next_start(
    make_manager: ManagerFactory, store: LocalObjectStore, outbox: Outbox
) -> None:
    manager = make_manager({"local": ScriptedBuilder({"train": SLEEP})}, max_concurrent=1)
    digest = make_context(store, simple_project())
    manager.submit(spec("bld_running", digest))
    manager.submit(spec("bld_waiting", digest))
    wait_phase(manager, "bld_running", "train")
    pid = manager.get("bld_running").pid  # type: ignore[union-attr]
    manager.shutdown(timeout=10)
    assert pid is not None and not pid_alive(pid)
    finished = events(outbox, "bld_running")[-1][1]
    assert finished["status"] == "FAILED" and finished["failed_phase"] == "train"
    assert "stopped during the build" in finished["error_summary"]
    assert not [t for t, _ in events(outbox, "bld_waiting")]

    restarted = make_manager({"local": ScriptedBuilder()})
    assert wait_final(restarted, "bld_waiting") == "SUCCEEDED"
    assert restarted.get("bld_running").status == "FAILED"  # type: ignore[union-attr]


def test_submit_and_cancel_return_at_once(make_manager: ManagerFactory, store: LocalObjectStore) -> None:
    manager = make_manager({"local": ScriptedBuilder({"resolve_dependencies": SLEEP})})
    digest = make_context(store, simple_project())
    started = time.monotonic()
    manager.submit(spec("bld_fast", digest))
    assert time.monotonic() - started < 1
    wait_phase(manager, "bld_fast", "resolve_dependencies")
    results: list[dict[str, object]] = []
    thread = threading.Thread(target=lambda: results.append(manager.cancel("bld_fast")))
    started = time.monotonic()
    thread.start()
    thread.join(5)
    assert time.monotonic() - started < 1 and results[0]["cancelled"] is True
    assert wait_final(manager, "bld_fast") == "CANCELLED"


def test_unknown_builder_on_this_agent_fails_cleanly(
    make_manager: ManagerFactory, store: LocalObjectStore, outbox: Outbox
) -> None:
    manager: BuildManager = make_manager({"local": ScriptedBuilder()})
    digest = make_context(store, simple_project())
    manager.submit(spec("bld_docker", digest, builder="docker"))
    assert wait_final(manager, "bld_docker") == "FAILED"
    finished = events(outbox, "bld_docker")[-1][1]
    assert finished["failed_phase"] == "resolve_dependencies"
    assert "no docker builder" in finished["error_summary"]

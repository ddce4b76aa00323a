"""Small parts of the builders: deterministic artifacts, requirement sets and environment keys,
pytest summaries, and the allow-listed environment of build steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from data_plane_agent.builds.environments import SdkWheel, environment_key, requirement_set
from data_plane_agent.builds.packaging import write_artifact
from data_plane_agent.builds.steps import StepFailed, child_env, pytest_failures


def _project(root: Path) -> Path:
    for rel, text in {
        "mallard.yaml": "model: {name: m}\n",
        "main/model.py": "x = 1\n",
        "tests/test_m.py": "def test_x():\n    pass\n",
        "notes/ignored.txt": "not packaged\n",
        "main/__pycache__/model.cpython-311.pyc": "junk",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_artifacts_are_byte_for_byte_reproducible(tmp_path: Path) -> None:
    project = _project(tmp_path / "project")
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text("{}")
    manifest = {"build_id": "bld_1", "params": {"a": "1"}}
    first = write_artifact(target=tmp_path / "a.tar.gz", manifest=manifest, model_dir=model, project=project)
    os.utime(project / "main" / "model.py", (1, 1))  # timestamps do not matter
    second = write_artifact(target=tmp_path / "b.tar.gz", manifest=manifest, model_dir=model, project=project)
    assert first == second
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()

    import tarfile

    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        names = tar.getnames()
    assert "project/notes/ignored.txt" not in names and not [n for n in names if "__pycache__" in n]
    assert {"manifest.json", "model/manifest.json", "project/main/model.py", "project/tests/test_m.py"} <= set(names)


def test_requirement_sets_are_sorted_deduplicated_and_include_the_sdk_and_pytest() -> None:
    reqs = requirement_set(["scikit-learn>=1.3", "pandas>=2", "  ", "scikit-learn>=1.3"])
    assert reqs == sorted(set(reqs))
    assert "scikit-learn>=1.3" in reqs and "pytest" in reqs
    assert any(r.startswith("pyyaml") for r in reqs) and any(r.startswith("numpy") for r in reqs)
    with pytest.raises(StepFailed, match="not supported"):
        requirement_set(["-r other.txt"])


def test_environment_keys_follow_what_goes_into_the_environment(tmp_path: Path) -> None:
    sdk = SdkWheel(tmp_path / "mallard.whl", "abc")
    key = environment_key(flavour="venv", sdk=sdk, requirements=["a", "b"])
    assert key == environment_key(flavour="venv", sdk=sdk, requirements=["a", "b"])
    assert key != environment_key(flavour="venv", sdk=sdk, requirements=["a", "c"])
    assert key != environment_key(flavour="venv", sdk=SdkWheel(sdk.path, "abd"), requirements=["a", "b"])
    assert key != environment_key(flavour="wheelhouse:base", sdk=sdk, requirements=["a", "b"])


def test_pytest_summaries_keep_the_failed_tests_and_the_counts() -> None:
    tail = [
        "E   assert 0.76 > 0.99",
        "=========================== short test summary info ============================",
        "FAILED tests/test_q.py::test_accuracy - AssertionError: accuracy too low",
        "ERROR tests/test_q.py::test_setup - RuntimeError: no data",
        "1 failed, 1 error, 2 passed in 0.81s",
    ]
    assert pytest_failures(tail) == (
        "FAILED tests/test_q.py::test_accuracy - AssertionError: accuracy too low\n"
        "ERROR tests/test_q.py::test_setup - RuntimeError: no data\n"
        "1 failed, 1 error, 2 passed in 0.81s"
    )
    assert pytest_failures(["some other failure"]) is None


def test_build_steps_do_not_inherit_the_agents_secrets() -> None:
    env = child_env(
        {
            "PATH": "/usr/bin",
            "AWS_SECRET_ACCESS_KEY": "s3cret",
            "MALLARD_AGENT_JOIN_TOKEN": "jt",
            "PIP_INDEX_URL": "https://mirror/simple",
            "HTTPS_PROXY": "http://proxy:3128",
        },
        EXTRA="1",
    )
    assert env == {
        "PATH": "/usr/bin",
        "PIP_INDEX_URL": "https://mirror/simple",
        "HTTPS_PROXY": "http://proxy:3128",
        "EXTRA": "1",
    }

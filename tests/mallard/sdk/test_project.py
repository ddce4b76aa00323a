"""Local validation of a model project: each mistake gives a message naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mallard.project import ModelCodeError, ProjectError, load_project, validate_project
from tests.mallard.sdk.helpers import TINY_MODEL, write_project

NO_SCHEMA = """
import mallard


class NoSchema(mallard.Model):
    def predict(self, df):
        return df
"""


def test_a_valid_project(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        config="""
        model: {class: "main.model:TinyModel", name: tiny}
        build:
          python_requirements: ["lightgbm>=4"]
          env: {OMP_NUM_THREADS: 1}
          params: {offset: 2.5, deep: true, label: x}
          tags: [a, b]
          resources: {cpus: 2, memory: 512Mi}
        """,
    )
    project = validate_project(tmp_path)
    assert project.model_class == "main.model:TinyModel"
    assert project.name == "tiny"
    assert project.params == {"offset": "2.5", "deep": "true", "label": "x"}
    assert project.config.build.env == {"OMP_NUM_THREADS": "1"}
    assert project.requirements == ["pandas", "lightgbm>=4"]
    assert project.config.build.resources == {"cpus": 2, "memory": "512Mi"}


def test_class_is_discovered_without_config(tmp_path: Path) -> None:
    write_project(tmp_path, config="")
    project = validate_project(tmp_path)
    assert project.model_class == "main.model:TinyModel"
    assert project.name == tmp_path.name


def test_discovery_follows_project_bases_and_aliases(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        model="""
        from .base import Base


        class Churn(Base):
            def predict(self, df):
                return df
        """,
        config="",
        files={
            "main/__init__.py": "",
            "main/base.py": """
            import mallard as ml


            class Base(ml.Model):
                def schema(self):
                    return ml.ModelSchema()
            """,
        },
    )
    assert validate_project(tmp_path).model_class == "main.model:Churn"


CASES = [
    ("missing mallard.yaml", None, {}, "no mallard.yaml in"),
    ("yaml syntax error", "model:\n  class: [unclosed\n", {}, r"mallard.yaml line 3, column 1: .*"),
    (
        "unknown key",
        "model:\n  class: main.model:TinyModel\nbuild:\n  parms: {a: 1}\n",
        {},
        "mallard.yaml line 4: unknown key 'build.parms' \\(did you mean 'params'\\?\\)",
    ),
    ("unknown top-level key", "modle: {}\n", {}, "unknown key 'modle' \\(did you mean 'model'\\?\\)"),
    ("duplicate key", "build:\n  tags: [a]\n  tags: [b]\n", {}, "mallard.yaml line 3, column 3: duplicate key 'tags'"),
    (
        "list param",
        "build:\n  params:\n    layers: [1, 2]\n",
        {},
        "mallard.yaml line 3: build.params.layers must be a string, number or boolean, not a list",
    ),
    (
        "null param",
        "build:\n  params:\n    layers:\n",
        {},
        "build.params.layers must be a string, number or boolean, not empty",
    ),
    ("bad memory", "build:\n  resources: {memory: lots}\n", {}, "build.resources.memory must be a size such as 512Mi"),
    ("bad class path", "model:\n  class: ChurnModel\n", {}, "model.class must look like main.module:ClassName"),
    ("missing module", "model:\n  class: main.nope:TinyModel\n", {}, "there is no module main/nope.py in the project"),
    ("missing class", "model:\n  class: main.model:Churn\n", {}, "main/model.py defines no top-level class 'Churn'"),
    (
        "not a model",
        "model:\n  class: main.model:Helper\n",
        {"main/model.py": TINY_MODEL + "\n\nclass Helper:\n    pass\n"},
        "Helper is not a mallard.Model subclass",
    ),
    ("no model class", "", {"main/model.py": "import pandas\n"}, "no mallard.Model subclass found in main/"),
    (
        "two model classes",
        "",
        {"main/other.py": TINY_MODEL.replace("TinyModel", "OtherModel")},
        r"defines 2 mallard.Model subclasses \(main.model:TinyModel, main.other:OtherModel\); choose one",
    ),
    ("missing schema", "", {"main/model.py": NO_SCHEMA}, r"main/model.py: NoSchema does not define schema\(\)"),
    (
        "missing predict",
        "",
        {"main/model.py": TINY_MODEL.replace("def predict", "def predict_later")},
        r"TinyModel does not define predict\(\)",
    ),
]


@pytest.mark.parametrize(("config", "files", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_errors(tmp_path: Path, config: str | None, files: dict[str, str], message: str) -> None:
    write_project(tmp_path, config=config or "", files=files)
    if config is None:
        (tmp_path / "mallard.yaml").unlink()
    with pytest.raises(ProjectError, match=message):
        validate_project(tmp_path)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    write_project(tmp_path, files={"main/helpers.py": "x = 1\n\ndef broken(:\n    pass\n"})
    with pytest.raises(ModelCodeError, match=r"^SyntaxError in main/helpers.py line 3: ") as caught:
        validate_project(tmp_path)
    assert caught.value.file == "main/helpers.py"
    assert caught.value.line == 3


def test_missing_main_directory(tmp_path: Path) -> None:
    (tmp_path / "mallard.yaml").write_text("")
    with pytest.raises(ProjectError, match="has no main/ directory"):
        load_project(tmp_path)


def test_ignored_files_are_not_read(tmp_path: Path) -> None:
    write_project(tmp_path, files={"main/scratch/broken.py": "def (:\n", ".mallardignore": "main/scratch/\n"})
    assert validate_project(tmp_path).model_class == "main.model:TinyModel"


def test_warnings_for_missing_requirements_and_tests(tmp_path: Path) -> None:
    write_project(tmp_path)
    (tmp_path / "main" / "requirements.txt").unlink()
    (tmp_path / "tests").rmdir()
    warnings = validate_project(tmp_path).warnings
    assert any("no requirements.txt or pyproject.toml" in w for w in warnings)
    assert any("no tests/ directory" in w for w in warnings)


def test_requirements_from_pyproject(tmp_path: Path) -> None:
    write_project(tmp_path, files={"main/pyproject.toml": '[project]\nname = "m"\ndependencies = ["numpy>=1.26"]\n'})
    (tmp_path / "main" / "requirements.txt").unlink()
    project = validate_project(tmp_path)
    assert project.requirements == ["numpy>=1.26"]
    assert project.requirements_file == tmp_path / "main" / "pyproject.toml"


def test_external_base_class_is_accepted_with_a_warning(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        model="from company.models import BaseChurn\n\n\nclass Churn(BaseChurn):\n    pass\n",
        config="model:\n  class: main.model:Churn\n",
    )
    project = validate_project(tmp_path)
    assert project.model_class == "main.model:Churn"
    assert any("company.models.BaseChurn" in w for w in project.warnings)

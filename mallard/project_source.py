"""Finding the model class in a project's main/ by reading the code, never running it.

Running user modules on a laptop would need the model's dependencies and could start training,
so the check parses each file with `ast` and follows imports by name: `mallard.Model`, `from
mallard import Model [as M]`, and classes of other modules in main/ (absolute, relative, or
imported through main/ being on `sys.path`). A base class from outside the project cannot be
followed; such a class is accepted when mallard.yaml names it, with a warning.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

MODEL_BASES = frozenset({"mallard.Model", "mallard.model.Model"})


class ProjectError(ValueError):
    """A model project is not valid; the message names the file and field, as do `file`, `field` and `line`."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None, line: int | None = None):
        super().__init__(message)
        self.file = file
        self.field = field
        self.line = line


class ModelCodeError(ProjectError):
    """The model code itself is broken (a syntax error), as opposed to the project's configuration."""


@dataclass
class _ClassDef:
    module: str
    path: str
    name: str
    bases: list[str]  # qualified where resolvable, else as written
    methods: set[str]


@dataclass
class ModelClassInfo:
    """What the code says about one model class."""

    module: str
    path: str
    name: str
    methods: set[str] = field(default_factory=set)
    unresolved_bases: list[str] = field(default_factory=list)

    def defines(self, method: str) -> bool | None:
        """Whether the class or a project base defines `method`; None when an unreadable base might."""
        if method in self.methods:
            return True
        return None if self.unresolved_bases else False


class _Index:
    """Every top-level class of main/, with its bases resolved to qualified names where possible."""

    def __init__(self, root: Path, files: list[str]) -> None:
        self.classes: dict[str, _ClassDef] = {}
        self.modules: dict[str, str] = {}  # module name -> relative path
        for rel in sorted(files):
            module = _module_name(rel)
            self.modules[module] = rel
            tree = _parse(root, rel)
            for cls in _read_classes(tree, module, rel):
                self.classes[f"{module}.{cls.name}"] = cls

    def lookup(self, qualified: str) -> _ClassDef | None:
        # main/ is on sys.path too, so `model.X` and `main.model.X` are the same class.
        return self.classes.get(qualified) or self.classes.get(f"main.{qualified}")

    def info(self, cls: _ClassDef) -> tuple[bool | None, ModelClassInfo]:
        """(is it a Model subclass: True / False / None for unknown, its info)."""
        info = ModelClassInfo(module=cls.module, path=cls.path, name=cls.name)
        verdict = self._walk(cls, info, seen=set())
        return verdict, info

    def _walk(self, cls: _ClassDef, info: ModelClassInfo, seen: set[str]) -> bool | None:
        key = f"{cls.module}.{cls.name}"
        if key in seen:
            return False
        seen.add(key)
        info.methods |= cls.methods
        verdict: bool | None = False
        for base in cls.bases:
            if base in MODEL_BASES:
                verdict = True
                continue
            parent = self.lookup(base)
            if parent is None:
                if base not in ("object", "abc.ABC", "ABC"):
                    info.unresolved_bases.append(base)
                    verdict = None if verdict is False else verdict
                continue
            found = self._walk(parent, info, seen)
            if found is True:
                verdict = True
            elif found is None and verdict is False:
                verdict = None
        return verdict


def find_model_classes(root: Path, files: list[str]) -> list[ModelClassInfo]:
    """The Model subclasses in `files` that no other model class in the project derives from."""
    index = _Index(root, files)
    models = {key: cls for key, cls in index.classes.items() if index.info(cls)[0] is True}
    used_as_base = set()
    for cls in models.values():
        for base in cls.bases:
            parent = index.lookup(base)
            if parent is not None:
                used_as_base.add(f"{parent.module}.{parent.name}")
    return [index.info(cls)[1] for key, cls in sorted(models.items()) if key not in used_as_base]


def resolve_class_path(root: Path, class_path: str, files: list[str]) -> ModelClassInfo:
    """Check that `module:Class` names a Model subclass in main/ and describe it."""
    module, _, name = class_path.partition(":")
    index = _Index(root, files)
    where = f"mallard.yaml: model.class {class_path!r}"
    rel = index.modules.get(module) or index.modules.get(f"main.{module}")
    if rel is None:
        expected = module.replace(".", "/")
        expected = expected if expected.startswith("main/") else f"main/{expected}"
        raise ProjectError(
            f"{where}: there is no module {expected}.py in the project", file="mallard.yaml", field="model.class"
        )
    cls = index.lookup(f"{module}.{name}")
    if cls is None:
        raise ProjectError(
            f"{where}: {rel} defines no top-level class {name!r}", file="mallard.yaml", field="model.class"
        )
    verdict, info = index.info(cls)
    if verdict is False:
        raise ProjectError(
            f"{rel}: {name} is not a mallard.Model subclass (class {name}(mallard.Model): ...)",
            file=rel,
            field="model.class",
        )
    info.module = module
    return info


def syntax_error_message(exc: SyntaxError, rel: str) -> str:
    """`SyntaxError in main/model.py line 12: invalid syntax` - the form builds report too."""
    return f"SyntaxError in {rel} line {exc.lineno}: {exc.msg}"


def _parse(root: Path, rel: str) -> ast.Module:
    try:
        source = (root / rel).read_bytes()
        return ast.parse(source, filename=rel)
    except SyntaxError as exc:
        raise ModelCodeError(syntax_error_message(exc, rel), file=rel, line=exc.lineno) from exc
    except (OSError, ValueError) as exc:
        raise ModelCodeError(f"cannot read {rel}: {exc}", file=rel) from exc


def _module_name(rel: str) -> str:
    parts = rel[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _read_classes(tree: ast.Module, module: str, rel: str) -> list[_ClassDef]:
    is_package = rel.endswith("/__init__.py")
    package = module if is_package else module.rpartition(".")[0]
    names: dict[str, str] = {}  # local name -> qualified name
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    head = alias.name.split(".", 1)[0]
                    names[head] = head
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node.module or "", node.level, package)
            for alias in node.names:
                names[alias.asname or alias.name] = f"{source}.{alias.name}" if source else alias.name
    local = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    classes = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [_qualify(base, names, local, module) for base in node.bases]
        methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)} | {
            t.id for item in node.body if isinstance(item, ast.Assign) for t in item.targets if isinstance(t, ast.Name)
        }
        classes.append(_ClassDef(module=module, path=rel, name=node.name, bases=bases, methods=methods))
    return classes


def _absolute(module: str, level: int, package: str) -> str:
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, module] if module else parts)


def _qualify(node: ast.expr, names: dict[str, str], local: set[str], module: str) -> str:
    dotted = _dotted(node)
    if dotted is None:
        return ast.unparse(node)
    head, _, rest = dotted.partition(".")
    if head in names:
        base = names[head]
    elif head in local:
        base = f"{module}.{head}"
    else:
        return dotted
    return f"{base}.{rest}" if rest else base


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None

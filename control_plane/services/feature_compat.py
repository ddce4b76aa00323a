"""Reading definitions on the control plane with the SDK's own rules (one source of truth).

`mallard.features.definitions` is pure Python (no DuckDB or pandas at import), so the control
plane parses every registered definition with it: a malformed one is refused before anything
is stored, and whether a change needs a new version is decided by the same
`incompatibilities()` the SDK documents (removing or retyping a feature, changing entity keys
or timestamp columns = incompatible).
"""

from __future__ import annotations

from typing import Any

from mallard.features.definitions import FeatureSet, StreamFeatureSet, definition_from_dict
from mallard.features.errors import FeatureDefinitionError
from shared.errors import InvalidInput

AnyFeatureSet = FeatureSet | StreamFeatureSet


def parse_definition(definition: dict[str, Any], *, where: str) -> AnyFeatureSet:
    """The feature set a JSON definition describes, or InvalidInput naming the entry and field."""
    try:
        parsed = definition_from_dict(definition)
    except FeatureDefinitionError as exc:
        field = f" (field {exc.field})" if exc.field else ""
        raise InvalidInput(f"{where}: {exc.message}{field}", field="definitions") from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidInput(f"{where}: malformed definition ({type(exc).__name__}: {exc})", field="definitions") from exc
    if not isinstance(parsed, FeatureSet | StreamFeatureSet):
        raise InvalidInput(
            f"{where}: only feature sets are registered (entities travel inside them), got {parsed.kind}",
            field="definitions",
        )
    return parsed


def incompatibilities(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why `new` cannot replace `old` under the same version (empty: it can)."""
    return parse_definition(new, where="definition").incompatibilities(parse_definition(old, where="stored"))

"""API errors and invalid attributes as Terraform diagnostics that name the attribute."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tf.utils import Diagnostics

from mallard_provider.client import ApiError

# The control plane's rule for project, agent and join-token names (a lowercase DNS label).
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
NAME_RULE = "use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit"

_HINTS = {
    0: "Check api_url (or MALLARD_API_URL) and that the control plane is running.",
    401: "Check api_key (or MALLARD_API_KEY): it must be a live key of the form mk.<id>.<secret>.",
    403: "The API key's role does not allow this; projects need a member key, join tokens and deletions an admin key.",
}


def add_api_error(
    diags: Diagnostics, exc: ApiError, *, doing: str, fields: Mapping[str, str], attribute: str | None = None
) -> None:
    """Report `exc` from `doing` (e.g. "create project 'ml'") at the attribute that caused it.

    `fields` maps the API's field names to attributes; `attribute` is the fallback.
    """
    attribute = (fields.get(exc.field) if exc.field else None) or attribute
    where = f"HTTP {exc.status} {exc.code}" if exc.status else exc.code
    named = f' for field "{exc.field}"' if exc.field else ""
    detail = f"The Mallard API answered {where}{named}."
    hint = _HINTS.get(exc.status)
    if hint:
        detail += " " + hint
    diags.add_error(f"Cannot {doing}: {exc.message}", detail, path=[attribute] if attribute else None)


def check_name(diags: Diagnostics, config: Mapping[str, Any], attribute: str = "name") -> None:
    """Reject a name the API would refuse, at plan time, so nothing is half-applied."""
    value = config.get(attribute)
    if isinstance(value, str) and not NAME_RE.match(value):
        diags.add_error(
            f"Invalid {attribute} {value!r}",
            f"{attribute} must be a lowercase DNS label: {NAME_RULE}.",
            path=[attribute],
        )

"""Where the CLI and SDK find the control plane: environment, then the active profile.

Profiles live in `~/.mallard/config.json` (or `$MALLARD_CONFIG`); `mallard dev up` writes
one named `dev` and makes it current.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


class ConfigError(Exception):
    """No usable control-plane address or credential."""


@dataclass(frozen=True)
class Profile:
    api_url: str
    api_key: str
    data_plane_url: str = ""
    gateway: str = ""
    data_plane_grpc: str = ""  # HOST:PORT of the data plane's gRPC prediction API


def config_path() -> Path:
    return Path(os.environ.get("MALLARD_CONFIG", Path.home() / ".mallard" / "config.json"))


def _read() -> dict[str, object]:
    path = config_path()
    if not path.exists():
        return {"current": None, "profiles": {}}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc
    if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
        raise ConfigError(f"{path} has an unexpected shape; delete it and run `mallard dev up` again")
    data.setdefault("profiles", {})
    return data


def save_profile(name: str, profile: Profile, *, make_current: bool = True) -> Path:
    data = _read()
    profiles = data["profiles"]
    assert isinstance(profiles, dict)
    profiles[name] = asdict(profile)
    if make_current:
        data["current"] = name
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds an API key
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)
    return path


def remove_profile(name: str) -> None:
    data = _read()
    profiles = data["profiles"]
    assert isinstance(profiles, dict)
    if name in profiles:
        del profiles[name]
        if data.get("current") == name:
            data["current"] = None
        config_path().write_text(json.dumps(data, indent=2))


def resolve(profile_name: str | None = None) -> Profile:
    """Environment variables win over the profile, field by field."""
    data = _read()
    name = profile_name or os.environ.get("MALLARD_PROFILE") or data.get("current")
    stored: dict[str, str] = {}
    if name:
        profiles = data["profiles"]
        assert isinstance(profiles, dict)
        if name not in profiles and profile_name:
            raise ConfigError(f"no profile named {name!r} in {config_path()}")
        stored = profiles.get(name, {})
    api_url = os.environ.get("MALLARD_API_URL") or stored.get("api_url", "")
    api_key = os.environ.get("MALLARD_API_KEY") or stored.get("api_key", "")
    if not api_url or not api_key:
        raise ConfigError(
            "no control plane configured: run `mallard dev up`, or set MALLARD_API_URL and MALLARD_API_KEY"
        )
    return Profile(
        api_url=api_url.rstrip("/"),
        api_key=api_key,
        data_plane_url=os.environ.get("MALLARD_DATA_PLANE_URL") or stored.get("data_plane_url", ""),
        gateway=stored.get("gateway", ""),
        data_plane_grpc=os.environ.get("MALLARD_DATA_PLANE_GRPC") or stored.get("data_plane_grpc", ""),
    )

"""Tolerant deserializers: garbage on the wire becomes INVALID_ARGUMENT, not INTERNAL."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)


class Undecodable:
    """Stands in for a message whose bytes did not parse."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def tolerant(message_type: type[M]) -> Callable[[bytes], M | Undecodable]:
    def parse(data: bytes) -> M | Undecodable:
        try:
            return message_type.FromString(data)
        except (DecodeError, ValueError) as exc:
            return Undecodable(f"bytes are not a valid {message_type.DESCRIPTOR.full_name}: {exc}")

    return parse

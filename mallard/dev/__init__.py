"""`mallard dev up`: the whole product on embedded defaults, as local processes."""

from mallard.dev.stack import DevStack, StackError

__all__ = ["DevStack", "StackError"]

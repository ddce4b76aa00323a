"""What every resource of this provider shares: the configured provider and state upgrades."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tf.iface import Resource, State, UpgradeContext

if TYPE_CHECKING:
    from mallard_provider.provider import MallardProvider


class MallardResource(Resource):
    """A resource backed by the control plane's REST API through `provider.client`."""

    def __init__(self, provider: MallardProvider) -> None:
        self.provider = provider

    def upgrade(self, ctx: UpgradeContext, version: int, old: State) -> State | None:
        # Every schema is still at its first version: state written by any release reads as is.
        return old

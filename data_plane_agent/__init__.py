"""The data-plane agent: runs in the customer's network, dials out to the control plane over mTLS."""

import os

# The agent runs gRPC (the link, the prediction API) and starts child processes (builds, model
# replicas). gRPC's fork handlers crash a child forked while other threads are inside gRPC
# (SIGABRT in ev_epoll1 before the child can exec: about 1 start in 6 under load). The children
# exec at once and never use gRPC, so the handlers are not needed. Read when grpc is first
# imported, hence here, before anything of the agent imports it.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from shared import __version__

__all__ = ["__version__"]

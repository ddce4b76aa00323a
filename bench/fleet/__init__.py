"""The agent-fleet benchmark's parts: provisioning, processes, simulated agents, the echo peer, the report."""

"""Handlers for commands the control plane sends over the link."""

from data_plane_agent.commands.handlers import CAPABILITIES, CommandContext, CommandFailed, run_command

__all__ = ["CAPABILITIES", "CommandContext", "CommandFailed", "run_command"]

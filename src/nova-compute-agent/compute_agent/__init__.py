"""Nova compute driver for compute-agent (nova.conf: compute_driver = compute_agent.ComputeAgentDriver)."""

from .driver import ComputeAgentDriver

__all__ = ['ComputeAgentDriver']

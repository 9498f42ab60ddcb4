"""The serving worker process: Open Inference Protocol v2 on its own port.

Only the worker imports this package; it loads torch through the recipes,
so the agent's control process must never import it.
"""

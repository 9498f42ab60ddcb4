"""Training: scheduled runs in worker subprocesses, the registry and its gates.

Import the submodules directly: ``service`` (what the daemon starts),
``manager`` (runs), ``scheduler``, ``registry``, ``recovery``, ``worker``.
This file imports nothing, so that ``python -m agent.training.worker``
does not pay for APScheduler, pydantic and the store at every run start.
Only the worker, which runs in its own process, imports torch (through
the recipe).
"""

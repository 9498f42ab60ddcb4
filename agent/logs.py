"""Log format for the agent: UTC time, level, logger, agent name, message."""

from __future__ import annotations

import logging
import sys
import time


class _AgentNameFilter(logging.Filter):
    def __init__(self, agent_name: str) -> None:
        super().__init__()
        self.agent_name = agent_name

    def filter(self, record: logging.LogRecord) -> bool:
        record.agent = self.agent_name
        return True


def configure_logging(level: str, agent_name: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s [agent=%(agent)s] %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_AgentNameFilter(agent_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One access line per console poll would drown the lifecycle lines.
    access_level = logging.DEBUG if level == "debug" else logging.WARNING
    logging.getLogger("uvicorn.access").setLevel(access_level)

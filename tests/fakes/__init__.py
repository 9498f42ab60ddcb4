"""Stand-ins for foreign libraries, used by tests and by agents that tests start."""

from console.screens.fleet import FleetScreen

__all__ = ["FleetScreen"]

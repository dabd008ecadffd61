"""Service layer: command and event handlers with a unit of work."""

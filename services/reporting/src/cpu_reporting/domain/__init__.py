"""Domain core: aggregates, value objects and rules. No I/O."""

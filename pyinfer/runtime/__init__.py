"""The interpreter that runs prepared plans, and the runtime counters."""

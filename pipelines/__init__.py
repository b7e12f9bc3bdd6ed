"""ZenML pipelines (thin: the flow is wired here, the work is done in llmbench/)."""

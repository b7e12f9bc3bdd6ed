"""ZenML steps: thin wrappers over llmbench.stages (all logic lives in llmbench/)."""

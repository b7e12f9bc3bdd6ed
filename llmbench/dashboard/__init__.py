"""The two dashboards on a run's stores, started and stopped together (`make dashboard`,
`make stop`): the local ZenML server and the MLflow UI. Both run as background processes
launched through their own CLIs, so this package never imports ZenML."""

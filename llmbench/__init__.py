"""llmbench core: configs, providers, tasks, scoring and reports. Never imports ZenML."""

__version__ = "0.1.0"

"""Strategies: models built from models (routers, cascades), ranked beside the models they
combine. Each kind is one module and one line in :mod:`llmbench.strategies.registry`."""

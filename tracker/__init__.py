"""tracker: per-node capacity accounting fed by Nova notifications."""

import importlib.metadata

__version__ = importlib.metadata.version("tracker")

"""tracker: per-node capacity accounting fed by Nova notifications."""

"""SQL persistence: models, migrations, and the one transaction that applies an event."""

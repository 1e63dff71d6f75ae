"""The scheduler side: keep the newest capacity of every node from our notifications."""

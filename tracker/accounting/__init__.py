"""Decide usage from an instance's events (pure: no I/O, no clock)."""

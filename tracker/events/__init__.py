"""Decode oslo.messaging envelopes and Nova payloads into immutable values (pure, no I/O)."""

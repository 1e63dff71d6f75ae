"""Drive Nova's own functional stack and record what it puts on the wire (see tools/nova-capture)."""

"""Backing stores for source offsets, connector configs and statuses (file, memory, compacted topics)."""

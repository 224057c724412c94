"""Kafka Connect's REST API (port 8083), on starlette."""

from tests.fixtures import broker, broker_process  # noqa: F401  (pytest fixtures)

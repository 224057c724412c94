from tests.fixtures import broker, broker_process, group_broker  # noqa: F401  (pytest fixtures)

import pytest

from tests.fixtures import broker, broker_process, clients, group_broker  # noqa: F401  (pytest fixtures)


@pytest.fixture(autouse=True)
def _close_clients():
    """Close the clients a test tracked, for tests whose broker fixture did not already (see fixtures.Clients)."""
    yield
    clients.close_all()

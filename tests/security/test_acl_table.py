"""The authorization table: every whole-request refusal encodes in every version the broker serves."""

from __future__ import annotations

import pytest

from moldau.broker.handlers import supported_versions
from moldau.protocol import api, messages
from moldau.protocol.errors import ErrorCode
from moldau.security import acl_table

SERVED = supported_versions()


@pytest.mark.parametrize("api_key", sorted(acl_table.REQUEST_CHECKS))
def test_refusals_encode_in_every_served_version(api_key):
    assert api_key in SERVED, f"the table names api {api_key}, which the broker does not serve"
    request = getattr(messages, api.APIS[api_key].name + "Request")()
    response = acl_table.error_response(api_key, request, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    low, high = SERVED[api_key]
    for version in range(low, high + 1):
        assert api.encode_response(api_key, version, 7, response)


def test_table_and_per_resource_list_cover_the_apis_kafka_authorizes():
    # Every API that Kafka authorizes (ApiVersions and the SASL APIs are open to all; DescribeCluster
    # only reports authorized operations) is either in the table or checked by its handler.
    open_apis = {17, 18, 36, 60}
    for api_key in SERVED:
        assert api_key in open_apis or api_key in acl_table.REQUEST_CHECKS or api_key in acl_table.PER_RESOURCE, \
            f"{api.APIS[api_key].name} ({api_key}) has no authorization rule"

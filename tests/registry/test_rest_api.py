"""Given the built-in registry, when clients call Confluent's REST API v1 (including with bad input), then the
answers, status codes and `error_code`s are Confluent's, and the registry keeps serving."""

from __future__ import annotations

import json

import pytest

from moldau.testing import running_broker
from tests.registry.http import call


def record(*fields: str, name: str = "R") -> str:
    return json.dumps({"type": "record", "name": name,
                       "fields": [{"name": f, "type": "string", "default": ""} for f in fields]})


@pytest.fixture(scope="module")
def url():
    with running_broker(schema_registry=True) as broker:
        yield broker.schema_registry_url


def register(url: str, subject: str, schema: str, **extra: object) -> tuple[int, dict]:
    return call(url, "POST", f"/subjects/{subject}/versions", {"schema": schema, **extra})


def test_register_get_and_lookup(url):
    status, body = register(url, "orders-value", record("a"))
    assert status == 200 and body["id"] >= 1
    schema_id = body["id"]
    assert register(url, "orders-value", record("a")) == (200, {"id": schema_id})  # idempotent
    # The same schema under another subject keeps its global id, at version 1 there.
    assert register(url, "orders-copy", record("a")) == (200, {"id": schema_id})
    status, got = call(url, "GET", f"/schemas/ids/{schema_id}")
    assert status == 200 and json.loads(got["schema"]) == json.loads(record("a")) and "schemaType" not in got
    assert call(url, "GET", f"/schemas/ids/{schema_id}/subjects")[1] == ["orders-copy", "orders-value"]
    assert {"subject": "orders-value", "version": 1} in call(url, "GET", f"/schemas/ids/{schema_id}/versions")[1]
    status, version = call(url, "GET", "/subjects/orders-value/versions/latest")
    assert status == 200 and (version["subject"], version["version"], version["id"]) == ("orders-value", 1,
                                                                                        schema_id)
    assert call(url, "GET", "/subjects/orders-value/versions/1/schema")[1] == json.loads(record("a"))
    status, found = call(url, "POST", "/subjects/orders-value", {"schema": record("a")})
    assert status == 200 and found["id"] == schema_id and found["version"] == 1
    assert call(url, "POST", "/subjects/orders-value", {"schema": record("zzz")})[1]["error_code"] == 40403
    assert call(url, "GET", "/schemas/types")[1] == ["AVRO", "JSON", "PROTOBUF"]


def test_compatibility_config_and_409(url):
    assert call(url, "GET", "/config")[1] == {"compatibilityLevel": "BACKWARD"}
    assert register(url, "compat", record("a"))[0] == 200
    incompatible = json.dumps({"type": "record", "name": "R", "fields": [{"name": "b", "type": "int"}]})
    status, body = register(url, "compat", incompatible)
    assert status == 409 and body["error_code"] == 409
    status, body = call(url, "POST", "/compatibility/subjects/compat/versions/latest?verbose=true",
                        {"schema": incompatible})
    assert status == 200 and body["is_compatible"] is False and body["messages"]
    assert call(url, "POST", "/compatibility/subjects/compat/versions/latest",
                {"schema": record("a", "b")})[1] == {"is_compatible": True}
    assert call(url, "PUT", "/config/compat", {"compatibility": "NONE"}) == (200, {"compatibility": "NONE"})
    assert call(url, "GET", "/config/compat")[1] == {"compatibilityLevel": "NONE"}
    assert register(url, "compat", incompatible)[0] == 200
    assert call(url, "GET", "/subjects/compat/versions")[1] == [1, 2]
    assert call(url, "GET", "/config/other")[1]["error_code"] == 40408
    assert call(url, "GET", "/config/other?defaultToGlobal=true")[1] == {"compatibilityLevel": "BACKWARD"}
    assert call(url, "DELETE", "/config/compat")[1] == {"compatibilityLevel": "NONE"}
    assert call(url, "PUT", "/config", {"compatibility": "SIDEWAYS"})[1]["error_code"] == 42203


def test_soft_and_hard_deletes(url):
    for fields in (("a",), ("a", "b"), ("a", "b", "c")):
        assert register(url, "del", record(*fields))[0] == 200
    assert call(url, "DELETE", "/subjects/del/versions/2?permanent=true")[1]["error_code"] == 40407
    assert call(url, "DELETE", "/subjects/del/versions/2") == (200, 2)
    assert call(url, "DELETE", "/subjects/del/versions/2")[1]["error_code"] == 40406
    assert call(url, "GET", "/subjects/del/versions")[1] == [1, 3]
    assert call(url, "GET", "/subjects/del/versions?deleted=true")[1] == [1, 2, 3]
    assert call(url, "GET", "/subjects/del/versions/2")[1]["error_code"] == 40402
    assert call(url, "GET", "/subjects/del/versions/2?deleted=true")[0] == 200
    assert call(url, "DELETE", "/subjects/del/versions/2?permanent=true") == (200, 2)
    assert call(url, "GET", "/subjects/del/versions?deleted=true")[1] == [1, 3]
    assert call(url, "DELETE", "/subjects/del?permanent=true")[1]["error_code"] == 40405
    assert call(url, "DELETE", "/subjects/del") == (200, [1, 3])
    assert "del" not in call(url, "GET", "/subjects")[1]
    assert "del" in call(url, "GET", "/subjects?deleted=true")[1]
    assert call(url, "DELETE", "/subjects/del")[1]["error_code"] == 40404
    assert call(url, "DELETE", "/subjects/del?permanent=true") == (200, [1, 3])
    assert call(url, "GET", "/subjects/del/versions")[1]["error_code"] == 40401
    # Re-registering after a permanent delete starts a new history.
    assert register(url, "del", record("a"))[0] == 200
    assert call(url, "GET", "/subjects/del/versions")[1] == [1]


def test_references(url):
    address = json.dumps({"type": "record", "name": "Address", "namespace": "shop",
                          "fields": [{"name": "city", "type": "string"}]})
    assert register(url, "address", address)[0] == 200
    customer = json.dumps({"type": "record", "name": "Customer", "namespace": "shop",
                           "fields": [{"name": "home", "type": "shop.Address"}]})
    references = [{"name": "shop.Address", "subject": "address", "version": 1}]
    status, body = register(url, "customer", customer, references=references)
    assert status == 200
    got = call(url, "GET", f"/schemas/ids/{body['id']}")[1]
    assert got["references"] == references
    assert call(url, "GET", "/subjects/address/versions/1/referencedby")[1] == [body["id"]]
    assert call(url, "DELETE", "/subjects/address/versions/1")[1]["error_code"] == 42206
    # Without the reference the named type is unknown: invalid schema.
    assert register(url, "customer2", customer)[1]["error_code"] == 42201
    unknown = [{"name": "shop.Address", "subject": "nowhere", "version": 1}]
    assert register(url, "customer2", customer, references=unknown)[1]["error_code"] == 42201


def test_modes(url):
    assert call(url, "GET", "/mode")[1] == {"mode": "READWRITE"}
    assert register(url, "frozen", record("a"))[0] == 200
    assert call(url, "PUT", "/mode/frozen", {"mode": "READONLY"}) == (200, {"mode": "READONLY"})
    status, body = register(url, "frozen", record("a", "b"))
    assert (status, body["error_code"]) == (422, 42205)
    assert call(url, "GET", "/mode/frozen")[1] == {"mode": "READONLY"}
    assert call(url, "DELETE", "/mode/frozen")[1] == {"mode": "READONLY"}
    assert register(url, "frozen", record("a", "b"))[0] == 200
    assert call(url, "PUT", "/mode/frozen", {"mode": "SIDEWAYS"})[1]["error_code"] == 42204
    # IMPORT keeps ids and versions given by the client (migrations from another registry).
    assert call(url, "PUT", "/mode/imported", {"mode": "IMPORT"}) == (200, {"mode": "IMPORT"})
    status, body = register(url, "imported", record("x"), id=5000, version=7)
    assert (status, body) == (200, {"id": 5000})
    assert call(url, "GET", "/subjects/imported/versions/7")[1]["id"] == 5000


def test_normalize_and_json_and_protobuf_types(url):
    spaced = '{ "type" : "record", "name" : "N", "fields" : [ ] }'
    status, body = call(url, "POST", "/subjects/norm/versions?normalize=true", {"schema": spaced})
    assert status == 200
    assert call(url, "POST", "/subjects/norm?normalize=true", {"schema": '{"type":"record","name":"N",'
                                                                         '"fields":[]}'})[1]["id"] == body["id"]
    status, body = register(url, "js", json.dumps({"type": "object"}), schemaType="JSON")
    assert status == 200 and call(url, "GET", f"/schemas/ids/{body['id']}")[1]["schemaType"] == "JSON"
    proto = 'syntax = "proto3";\npackage p;\nmessage M { string a = 1; }\n'
    status, body = register(url, "pb", proto, schemaType="PROTOBUF")
    assert status == 200
    got = call(url, "GET", f"/schemas/ids/{body['id']}")[1]
    assert got["schemaType"] == "PROTOBUF" and got["schema"] == proto
    serialized = call(url, "GET", f"/schemas/ids/{body['id']}?format=serialized")[1]["schema"]
    assert serialized != proto and "{" not in serialized  # base64 FileDescriptorProto


@pytest.mark.parametrize(("method", "path", "body", "status", "error_code"), [
    ("POST", "/subjects/bad/versions", {"schema": "{not json"}, 422, 42201),
    ("POST", "/subjects/bad/versions", {"schema": '{"type": "record", "name": "R", "fields": [{"name": "a"}]}'},
     422, 42201),
    ("POST", "/subjects/bad/versions", {"schema": '{"type": "nope"}'}, 422, 42201),
    ("POST", "/subjects/bad/versions", {"schema": '{"type": 5}', "schemaType": "JSON"}, 422, 42201),
    ("POST", "/subjects/bad/versions", {"schema": "message {", "schemaType": "PROTOBUF"}, 422, 42201),
    ("POST", "/subjects/bad/versions", {"schema": '"int"', "schemaType": "XML"}, 422, 42201),
    ("POST", "/subjects/bad/versions", {"nothing": 1}, 422, 42201),
    ("POST", "/subjects/bad/versions", {"schema": json.dumps({"type": "record", "name": "Big", "fields": [
        {"name": f"f{i}", "type": "string", "doc": "x" * 100} for i in range(12000)]})}, 422, 42201),
    ("GET", "/subjects/none/versions", None, 404, 40401),
    ("GET", "/subjects/none/versions/1", None, 404, 40401),
    ("GET", "/schemas/ids/999999", None, 404, 40403),
    ("GET", "/subjects/orders-value/versions/0", None, 422, 42202),
    ("GET", "/subjects/orders-value/versions/abc", None, 422, 42202),
    ("GET", "/subjects/orders-value/versions/99", None, 404, 40402),
    ("GET", "/nothing/here", None, 404, 404),
])
def test_bad_input_gets_confluent_error_codes(url, method, path, body, status, error_code):
    register(url, "orders-value", record("a"))
    got_status, got = call(url, method, path, body)
    assert (got_status, got["error_code"]) == (status, error_code), got
    assert isinstance(got["message"], str) and got["message"]
    assert call(url, "GET", "/subjects")[0] == 200  # still serving


def test_wrong_content_type_and_malformed_body(url):
    status, body = call(url, "POST", "/subjects/x/versions", {"schema": '"int"'}, content_type="text/plain")
    assert (status, body["error_code"]) == (415, 415)
    status, body = call(url, "POST", "/subjects/x/versions", raw=b"{oops", content_type="application/json")
    assert (status, body["error_code"]) == (400, 400)
    status, body = call(url, "POST", "/subjects/x/versions", raw=b"x" * (5 * 1024 * 1024))
    assert (status, body["error_code"]) == (413, 413)
    assert call(url, "POST", "/subjects/x/versions", {"schema": '"int"'},
                content_type="application/json")[0] == 200


def test_basic_authentication():
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    with running_broker(schema_registry=True, schema_registry_basic_auth_users="alice:secret") as broker:
        url = broker.schema_registry_url
        assert call(url, "GET", "/subjects")[1]["error_code"] == 401
        wrong = SchemaRegistryClient({"url": url, "basic.auth.user.info": "alice:guess"})
        with pytest.raises(SchemaRegistryError) as refused:
            wrong.get_subjects()
        assert refused.value.http_status_code == 401
        client = SchemaRegistryClient({"url": url, "basic.auth.user.info": "alice:secret"})
        schema_id = client.register_schema("s", Schema('"string"', "AVRO"))
        assert client.get_subjects() == ["s"] and client.get_schema(schema_id).schema_str == '"string"'


def test_protobuf_and_json_schema_references(url):
    common = 'syntax = "proto3";\npackage shop;\nmessage Money { int64 cents = 1; string currency = 2; }\n'
    assert register(url, "money.proto", common, schemaType="PROTOBUF")[0] == 200
    order = ('syntax = "proto3";\npackage shop;\nimport "money.proto";\n'
             "message Order { string id = 1; shop.Money total = 2; }\n")
    refs = [{"name": "money.proto", "subject": "money.proto", "version": 1}]
    status, body = register(url, "order-value", order, schemaType="PROTOBUF", references=refs)
    assert status == 200, body
    assert register(url, "order-bad", order, schemaType="PROTOBUF")[1]["error_code"] == 42201  # import unresolved
    # The referenced subject checks its own versions: a field kind change there is refused.
    money2 = common.replace("int64 cents", "string cents")
    assert register(url, "money.proto", money2, schemaType="PROTOBUF")[1]["error_code"] == 409

    address = json.dumps({"type": "object", "properties": {"city": {"type": "string"}}})
    assert register(url, "address.json", address, schemaType="JSON")[0] == 200
    person = json.dumps({"type": "object", "properties": {"home": {"$ref": "address.json"}}})
    json_refs = [{"name": "address.json", "subject": "address.json", "version": 1}]
    status, body = register(url, "person-value", person, schemaType="JSON", references=json_refs)
    assert status == 200, body
    narrowed = json.dumps({"type": "object", "properties": {"home": {"$ref": "address.json"}},
                           "required": ["home"]})
    status, body = call(url, "POST", "/compatibility/subjects/person-value/versions/latest",
                        {"schema": narrowed, "schemaType": "JSON", "references": json_refs})
    assert status == 200 and body["is_compatible"] is False


def test_compatibility_endpoint_without_a_subject(url):
    body = {"schema": record("a")}
    assert call(url, "POST", "/compatibility/subjects/nobody/versions", body) == (200, {"is_compatible": True})
    status, got = call(url, "POST", "/compatibility/subjects/nobody/versions/1", body)
    assert (status, got["error_code"]) == (404, 40402)
    status, got = call(url, "POST", "/compatibility/subjects/nobody/versions/latest", body)
    assert (status, got["error_code"]) == (404, 40402)
    status, got = register(url, "typed", record("a"), id="seven")
    assert (status, got["error_code"]) == (422, 422)


def test_schemas_listing_and_contexts(url):
    for fields in (("a",), ("a", "b")):
        assert register(url, "listing-x", record(*fields))[0] == 200
    listed = call(url, "GET", "/schemas?subjectPrefix=listing-")[1]
    assert [(e["subject"], e["version"]) for e in listed] == [("listing-x", 1), ("listing-x", 2)]
    latest = call(url, "GET", "/schemas?subjectPrefix=listing-&latestOnly=true")[1]
    assert [(e["subject"], e["version"]) for e in latest] == [("listing-x", 2)]
    assert call(url, "GET", "/contexts") == (200, ["."])


def test_formatting_and_key_order_do_not_make_a_new_schema(url):
    compact = '{"type":"record","name":"Fmt","fields":[{"name":"a","type":"int"}]}'
    reordered = '{ "fields" : [ { "type" : "int", "name" : "a" } ], "name" : "Fmt", "type" : "record" }'
    schema_id = register(url, "fmt", compact)[1]["id"]
    assert register(url, "fmt", reordered) == (200, {"id": schema_id})
    assert call(url, "GET", "/subjects/fmt/versions")[1] == [1]
    assert call(url, "POST", "/subjects/fmt", {"schema": reordered})[1]["id"] == schema_id
    assert register(url, "fmt-other", reordered) == (200, {"id": schema_id})
    # Field order is part of an Avro schema (it is the binary layout): a different order is a new schema.
    swapped = '{"type":"record","name":"Fmt","fields":[{"name":"b","type":"int","default":0},' \
              '{"name":"a","type":"int"}]}'
    assert register(url, "fmt", swapped)[1]["id"] != schema_id

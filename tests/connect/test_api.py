"""The connector API alone: ConfigDef validation, converters, and plugin discovery by every accepted name."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sys

import pytest

from moldau.connect.api import ConfigDef, ConfigException, Importance, Schema, Struct, Type
from moldau.connect.api.config import Range
from moldau.connect.api.data import INT32, OPTIONAL_STRING, STRING, decimal_schema, timestamp_schema
from moldau.connect.api.errors import ConnectException, DataException
from moldau.connect.converters.json import JsonConverter
from moldau.connect.converters.simple import ByteArrayConverter, StringConverter
from moldau.connect.plugins import Plugins, reset_plugins
from moldau.connect.runtime.worker_config import read_properties

USER = Schema.struct([("id", INT32), ("name", OPTIONAL_STRING), ("balance", decimal_schema(2, optional=True)),
                      ("created", timestamp_schema())], name="user")


def test_configdef_parses_defaults_and_reports_every_error():
    definition = (ConfigDef().define("file", Type.STRING, importance=Importance.HIGH)
                  .define("batch.size", Type.INT, 2000, validator=Range.at_least(1)))
    assert definition.parse({"file": "x"}) == {"file": "x", "batch.size": 2000}
    with pytest.raises(ConfigException, match='Missing required configuration "file"'):
        definition.parse({})
    results = definition.validate({"batch.size": "0"})
    assert results["file"].errors == ['Missing required configuration "file" which has no default value.']
    assert results["batch.size"].errors == ["Invalid value 0 for configuration batch.size: Value must be at least 1"]
    assert definition.validate({"file": "x", "batch.size": "ten"})["batch.size"].errors == [
        "Invalid value ten for configuration batch.size: Not a number of type INT"]


def test_json_converter_writes_kafkas_schema_envelope_and_reads_it_back():
    converter = JsonConverter()
    converter.configure({}, is_key=False)  # schemas.enable defaults to true, as in Kafka
    created = dt.datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC)
    value = Struct(USER, {"id": 7, "name": None, "balance": decimal.Decimal("12.34"), "created": created})
    data = converter.from_connect_data("t", USER, value)
    tree = json.loads(data)
    assert tree["schema"]["type"] == "struct" and tree["schema"]["name"] == "user"
    assert tree["schema"]["fields"][0] == {"type": "int32", "optional": False, "field": "id"}
    assert tree["schema"]["fields"][3]["name"] == "org.apache.kafka.connect.data.Timestamp"
    assert tree["payload"]["id"] == 7 and tree["payload"]["created"] == 1704164645006
    assert tree["payload"]["balance"] == "BNI="  # unscaled 1234, base64, as Kafka's decimal.format=BASE64
    back = converter.to_connect_data("t", data)
    assert back.value == value and back.schema == USER


def test_json_converter_without_schemas_and_bad_input():
    converter = JsonConverter()
    converter.configure({"schemas.enable": "false"}, is_key=True)
    assert converter.from_connect_data("t", None, {"a": [1, 2]}) == b'{"a":[1,2]}'
    assert converter.to_connect_data("t", b'{"a":1}').value == {"a": 1}
    with pytest.raises(DataException):
        converter.to_connect_data("t", b"{not json")
    strict = JsonConverter()
    strict.configure({}, is_key=False)
    with pytest.raises(DataException, match="schemas.enable=false"):
        strict.to_connect_data("t", b'{"a":1}')


def test_json_converter_reads_envelopes_in_any_json_layout_and_reports_bad_ones():
    """The fast path (schema looked up by its text, payload parsed in place) must agree with a full parse
    whatever the whitespace, and leave every malformed record to the generic path's errors."""
    converter = JsonConverter()
    converter.configure({}, is_key=False)
    created = dt.datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC)
    value = Struct(USER, {"id": 7, "name": "é", "balance": decimal.Decimal("12.34"), "created": created})
    tree = json.loads(converter.from_connect_data("t", USER, value))
    for text in (json.dumps(tree), json.dumps(tree, indent=2), json.dumps(tree, separators=(",", ":")) + "\n",
                 json.dumps({"payload": tree["payload"], "schema": tree["schema"]})):  # other key order
        for _ in range(2):  # the second time the schema text is the cached one
            back = converter.to_connect_data("t", text.encode())
            assert back.value == value and back.schema == USER
    schema_text = json.dumps(tree["schema"])
    for bad, error in ((f'{{"schema": {schema_text}, "payload": {{"id": 1}}, "extra": 1}}', "may not contain"),
                       (f'{{"schema": {schema_text}, "payload": {{"id": 1}}}} trailing', "serialization error"),
                       (f'{{"schema": {schema_text}, "payload": ', "serialization error"),
                       (f'{{"schema": {schema_text}, "payload": {{"name": "x"}}}}', "required INT32"),
                       ('{"schema": {"type": "int32"}, "payload": 1', "serialization error")):
        with pytest.raises(DataException, match=error):
            converter.to_connect_data("t", bad.encode())
    with pytest.raises(DataException, match="Invalid Java object for schema type INT32"):
        converter.from_connect_data("t", USER, Struct(USER, {"id": "7", "created": created}))
    assert json.loads(converter.from_connect_data("t", USER, Struct(USER, {"id": 1, "created": created})))[
        "payload"] == {"id": 1, "name": None, "balance": None, "created": 1704164645006}


def test_string_and_bytearray_converters():
    string = StringConverter()
    string.configure({}, False)
    assert string.from_connect_data("t", STRING, "héllo") == "héllo".encode()
    assert string.to_connect_data("t", b"abc").value == "abc"
    raw = ByteArrayConverter()
    raw.configure({}, False)
    assert raw.from_connect_data("t", None, b"\x00\x01") == b"\x00\x01"
    with pytest.raises(DataException):
        raw.from_connect_data("t", None, "not bytes")


@pytest.mark.parametrize("name", ["org.apache.kafka.connect.file.FileStreamSourceConnector",
                                  "FileStreamSourceConnector", "FileStreamSource",
                                  "moldau.connect.connectors.file.FileStreamSourceConnector",
                                  "moldau.connect.connectors.file:FileStreamSourceConnector"])
def test_connector_found_by_kafka_class_name_alias_and_python_path(name):
    from moldau.connect.connectors.file import FileStreamSourceConnector

    assert Plugins().load("connector", name) is FileStreamSourceConnector


def test_unknown_plugin_names_the_available_ones():
    with pytest.raises(ConnectException, match="FileStreamSinkConnector"):
        Plugins().find("connector", "NoSuchConnector")


def test_third_party_connector_discovered_through_entry_point(tmp_path, monkeypatch):
    package = tmp_path / "acme_connect"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from moldau.connect.connectors.file import FileStreamSinkConnector\n"
        "class AcmeSinkConnector(FileStreamSinkConnector):\n    pass\n")
    dist = tmp_path / "acme_connect-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-connect\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[moldau.connect.connectors]\nAcmeSinkConnector = acme_connect:AcmeSinkConnector\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_plugins()
    try:
        registry = Plugins()
        assert registry.load("connector", "AcmeSinkConnector").__name__ == "AcmeSinkConnector"
        assert registry.load("connector", "AcmeSink").__name__ == "AcmeSinkConnector"  # alias without suffix
        assert "AcmeSinkConnector" in [d.class_name for d in registry.descriptors("connector")]
    finally:
        sys.modules.pop("acme_connect", None)
        reset_plugins()


def test_kafka_worker_properties_file_is_read(tmp_path):
    path = tmp_path / "worker.properties"
    path.write_text("# Kafka's connect-standalone.properties\nbootstrap.servers=localhost:9092\n"
                    "key.converter=org.apache.kafka.connect.json.JsonConverter\nkey.converter.schemas.enable: true\n"
                    "plugin.path=/usr/share/java,\\\n    /opt/connectors\n")
    props = read_properties(path)
    assert props["key.converter.schemas.enable"] == "true"
    assert props["plugin.path"] == "/usr/share/java,/opt/connectors"

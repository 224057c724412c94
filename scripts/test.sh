#!/usr/bin/env bash
# Installs everything the test suite needs (Python, Debian and npm packages) and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v kcat >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq kcat) >/dev/null
fi
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1; then
    # Connect's Postgres connector tests start a real server (tests/connect/pg_fixtures.py); they skip without it
    (apt-get update -qq && apt-get install -y -qq postgresql) >/dev/null || echo "postgresql not installed" >&2
fi
if [ -f tests/js/package.json ] && [ ! -d tests/js/node_modules ]; then
    (cd tests/js && npm ci --no-audit --no-fund --silent)
fi
if command -v javac >/dev/null 2>&1; then
    bash scripts/java-client-setup.sh >/dev/null  # the Java client's jars, for tests/integration/test_java_client.py
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
exec python3 -m pytest "$@"

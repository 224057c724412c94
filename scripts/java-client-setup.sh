#!/usr/bin/env bash
# Fetches the Apache Kafka Java client (kafka-clients 3.9.1) and the jars it needs at run time, and prints
# their classpath on stdout. Idempotent: a second run only prints.
#
# Maven Central is out of reach here, so the jars come from a PyPI wheel that redistributes them for PyFlink
# (shigawire-apache-flink-libraries 2.0.0.post1): kafka-clients, slf4j-api (1.7.36, no logger binding: the
# client logs nothing), lz4-java, snappy-java and zstd-jni, the last three with their Linux native libraries.
# Debian has no kafka-clients package.
set -euo pipefail
WHEEL_SPEC='shigawire-apache-flink-libraries==2.0.0.post1'
CACHE="${MOLDAU_JAVA_CACHE:-$HOME/.cache/moldau-java}"
LIB="$CACHE/lib"
JARS=(kafka-clients slf4j-api lz4-java snappy-java zstd-jni)

missing=0
for jar in "${JARS[@]}"; do
    [ -f "$LIB/$jar.jar" ] || missing=1
done
if [ "$missing" = 1 ]; then
    # A download directory of our own, so that concurrent runs never see each other's half-written files.
    mkdir -p "$LIB"
    download=$(mktemp -d "$CACHE/download.XXXXXX")
    trap 'rm -rf "$download"' EXIT  # the wheel is 92 MB, of which only the five jars are kept
    # pip warns about absent local indexes on every run: show its output only when it fails.
    if ! out=$(python3 -m pip download -q --disable-pip-version-check --no-deps "$WHEEL_SPEC" \
            -d "$download" 2>&1); then
        echo "$out" >&2
        exit 1
    fi
    members=()
    for jar in "${JARS[@]}"; do members+=("pyflink/lib/$jar.jar"); done
    python3 - "$download"/*.whl "$LIB" "${members[@]}" <<'PY'
import os, sys, zipfile
wheel, lib, *members = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf:
    for member in members:
        target = os.path.join(lib, os.path.basename(member))
        partial = f"{target}.{os.getpid()}.part"
        with zf.open(member) as src, open(partial, "wb") as dst:
            dst.write(src.read())
        os.replace(partial, target)
PY
fi
classpath=""
for jar in "${JARS[@]}"; do classpath="${classpath:+$classpath:}$LIB/$jar.jar"; done
echo "$classpath"

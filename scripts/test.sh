#!/bin/sh
# Install everything and run the whole test suite: type check, then pytest on SQLite and PostgreSQL.
# PostgreSQL: a local server from Debian's packages is installed (if missing) and started; the storage
# tests run against it through KOLBRIDGE_TEST_PG_URL. Needs root for apt-get and the postgres user.
set -eu
cd "$(dirname "$0")/.."

# Debian packages the tests use: PostgreSQL (the storage tests), Chromium and its driver (the console's
# browser tests drive /usr/bin/chromium through /usr/bin/chromedriver; no browser is downloaded)
missing=""
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$missing postgresql"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
if [ -n "$missing" ]; then
  echo "== installing Debian packages:$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if [ -z "${KOLBRIDGE_TEST_PG_URL:-}" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
    pg_createcluster "$version" main >/dev/null
  fi
  pg_ctlcluster "$version" main start 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
    sleep 1
  done
  su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='kolbridge'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"create role kolbridge login password 'kolbridge' createdb\""
  su postgres -c "psql -qtAc \"select 1 from pg_database where datname='kolbridge_test'\"" | grep -q 1 ||
    su postgres -c "createdb -O kolbridge kolbridge_test"
  KOLBRIDGE_TEST_PG_URL="postgresql+asyncpg://kolbridge:kolbridge@127.0.0.1/kolbridge_test"
  export KOLBRIDGE_TEST_PG_URL
fi

python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
.venv/bin/ruff check .
# mypy (one core, ~1 min from a cold cache) runs beside the tests; its verdict is awaited at the end
nice -n 10 .venv/bin/mypy > .mypy.out 2>&1 &
mypy_pid=$!
# Two groups at once (pytest-xdist), so the wall clock is the longer of the two, not their sum:
# - the tests marked `realtime` (the demo as a user runs it, serve and the control plane as processes,
#   PostgreSQL stopped, the bench) mostly wait on the wall clock: three at a time, at normal priority;
# - everything else (pure cores, the actor tree, whole calls on looptime's virtual clock) is CPU-bound
#   and indifferent to being slowed down: three workers at `nice 10`, so they only take the CPU the
#   wall-clock tests leave. Their report follows the wall-clock one.
# Hypothesis fuzzers take 300 examples each; KOLBRIDGE_FUZZ_FULL=1 runs the full 10,000.
# Each pytest run has a hard limit besides pytest-timeout's 240 s per test (pyproject.toml), so no hang can
# hold CI to its own limit with nothing printed.
limit="timeout -k 15 1200"
status=0
nice -n 10 $limit .venv/bin/pytest -q -rs -p no:cacheprovider -n 3 -m "not realtime and not stall and not bench" > .test-virtual.log 2>&1 &
virtual_pid=$!
$limit .venv/bin/pytest -q -rs -p no:cacheprovider -n 3 -m realtime || status=$?
wait "$virtual_pid" || status=$?
cat .test-virtual.log
# last, alone: the two tests that measure event-loop stalls on the wall clock (`stall`), then the bench smoke
# (`bench`: 5 calls through the capacity bench, whose server must not underrun)
$limit .venv/bin/pytest -q -rs -p no:cacheprovider -n 2 -m stall || status=$?
$limit .venv/bin/pytest -q -rs -p no:cacheprovider -m bench || status=$?
if ! wait "$mypy_pid"; then cat .mypy.out; status=1; fi
tail -1 .mypy.out
exit "$status"

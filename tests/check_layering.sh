#!/usr/bin/env bash
# Fails when a file of the core (src/domain, src/application) includes an adapter: Beast,
# SQLite, libpq, or anything of infrastructure. Domain may include the standard library only.
set -u
src=${1:?usage: check_layering.sh SRC_DIR}
bad=0
check() {
  local dir=$1 pattern=$2
  local hits
  hits=$(grep -RnE "^\s*#\s*include\s*[<\"]($pattern)" "$src/$dir" --include='*.hpp' --include='*.cpp' | grep -v '_test\.cpp:' || true)
  if [ -n "$hits" ]; then
    echo "forbidden include in src/$dir:"
    echo "$hits"
    bad=1
  fi
}
check application 'boost/beast|sqlite3\.h|libpq-fe\.h|infrastructure/|spdlog|boost/json'
check domain 'boost/|sqlite3\.h|libpq-fe\.h|infrastructure/|application/|spdlog'
if [ $bad -ne 0 ]; then echo "layering: FAILED"; exit 1; fi
echo "layering: ok (domain: standard library only; application: domain + Asio)"

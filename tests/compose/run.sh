#!/usr/bin/env bash
# `make test-compose`: the seed's stack for real.
#
# 1. The container engine that `make up` picks (docker compose where a Docker engine runs, else
#    podman-compose, installed when missing): build the images, bring the stack up, run steps 1-8
#    of the seed's README (../shared/seed/README.md) against it as written there -- curl on
#    localhost:8000, python3 for the JSON, step 8 as `podman-compose exec postgres psql ...` (or
#    `docker compose exec ...`) -- check what they print, then `make psql`, and take the stack
#    down, also when a step fails.
# 2. The no-engine fallback (CHATBOT_COMPOSE_ENGINE=none): a PostgreSQL cluster from Debian's
#    packages and the binary on 8000: start, post, stream, query run_events, stop, start again
#    (the data is kept), stop.
#
# Needs port 8000 free. Prints `compose: N passed, M failed`; exit status 1 when one failed.
#   tests/compose/run.sh [engine|fallback]   (both by default)
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 2
parts=${1:-engine fallback}
out=$repo/build/test-compose
rm -rf "$out"
mkdir -p "$out"

passed=0
failed=0
failures=()
ok() { passed=$((passed + 1)); echo "  ok    $1"; }
bad() { failed=$((failed + 1)); failures+=("$1"); echo "  FAIL  $1"; }
check() { # check NAME COMMAND...: one test case
  local name=$1
  shift
  if "$@"; then ok "$name"; else bad "$name"; return 1; fi
}
show() { sed 's/\r$//; s/^/        | /' "$1"; }
port_free() {
  (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null || return 0
  echo "        port 8000 is in use: $(ss -Hltnp 'sport = :8000' 2>/dev/null | grep -o 'users:.*' || echo '?')"
  return 1
}

# The stack the trap takes down: "" (none), or the environment of scripts/compose that started it.
active_env=()
stack_down() {
  [ ${#active_env[@]} -gt 0 ] || return 0
  echo "--- taking the stack down"
  env "${active_env[@]}" scripts/compose down || true
  active_env=()
}
cleanup() {
  stack_down
  if [ -n "${created_volume:-}" ]; then
    case "$engine" in
      podman) podman volume rm -f "$created_volume" >/dev/null 2>&1 || true ;;
      docker) docker volume rm -f "$created_volume" >/dev/null 2>&1 || true ;;
    esac
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The seed's steps 1-7 exactly as its README writes them; outputs in $out/$1-step*.txt.
# Sets THREAD_ID, RUN_ID and EVENTS (the stream's "id type" lines).
seed_steps_1_to_7() {
  local p=$1 f
  f=$out/$p-step1.txt
  curl -X POST http://localhost:8000/api/users   -H "Content-Type: application/json"   -d '{"name":"smoke-user"}' >"$f" 2>"$f.err"
  echo "    step 1: $(cat "$f")"
  # 201 with the new user; on a database an earlier `make up` kept, 409 naming the same user.
  check "$p: 1. create a user" python3 -c '
import json, sys
u = json.load(open(sys.argv[1]))
assert u["name"] == "smoke-user" and isinstance(u["user_id"], int), u
if sys.argv[2] == "fresh":
    assert "created_at" in u and "status" not in u, u
else:
    assert "created_at" in u or u.get("status") == 409, u' "$f" "$fresh_db"

  THREAD_ID=$(curl -s -X POST http://localhost:8000/api/threads   -H "Content-Type: application/json"   -d '{"user_id": 1}'   | python3 -c "import sys, json; print(json.load(sys.stdin)['thread_id'])")

  echo "THREAD_ID=$THREAD_ID"
  check "$p: 2. create a thread (THREAD_ID=$THREAD_ID)" test -n "$THREAD_ID"

  RUN_ID=$(curl -s -X POST http://localhost:8000/api/threads/$THREAD_ID/messages   -H "Content-Type: application/json"   -d '{"content":"hello"}'   | python3 -c "import sys, json; print(json.load(sys.stdin)['run_id'])")

  echo "RUN_ID=$RUN_ID"
  check "$p: 3. post a message, a run is created (RUN_ID=$RUN_ID)" test -n "$RUN_ID"

  f=$out/$p-step4.txt
  curl http://localhost:8000/api/runs/$RUN_ID >"$f" 2>"$f.err"
  echo "    step 4: $(cat "$f")"
  check "$p: 4. get the run" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["run_id"] == sys.argv[2] and r["status"] in ("queued", "running", "done"), r' "$f" "$RUN_ID"

  # The stream ends after the run's `done` event; the timeout only guards against a hang.
  f=$out/$p-step5.txt
  timeout 60 curl -N http://localhost:8000/api/runs/$RUN_ID/events >"$f" 2>"$f.err"
  EVENTS=$(python3 "$repo/tests/compose/sse_events.py" <"$f")
  echo "    step 5: $(echo "$EVENTS" | wc -l) events: $(echo "$EVENTS" | awk '{print $2}' | uniq -c | awk '{printf "%s%s ", $2, ($1 > 1 ? "x" $1 : "")}')"
  check "$p: 5. stream the events (ids 1..n, state first, done last)" python3 -c '
import sys
ev = [l.split() for l in sys.argv[1].splitlines()]
ids = [int(i) for i, _ in ev]
types = [t for _, t in ev]
assert ids == list(range(1, len(ids) + 1)) and len(ids) > 10, ids
assert types[0] == "state" and types[-1] == "done" and "final" in types, types' "$EVENTS"

  f=$out/$p-step6.txt
  timeout 60 curl -N http://localhost:8000/api/runs/$RUN_ID/events   -H "Last-Event-ID: 10" >"$f" 2>"$f.err"
  check "$p: 6. resume after event 10 (ids 11..n)" python3 -c '
import sys
full = [l.split()[0] for l in sys.argv[1].splitlines()]
got = [l.split()[0] for l in sys.argv[2].splitlines()]
assert got == full[10:], (got, full)' "$EVENTS" "$(python3 "$repo/tests/compose/sse_events.py" <"$f")"

  f=$out/$p-step7.txt
  curl -X POST http://localhost:8000/api/runs/$RUN_ID/cancel >"$f" 2>"$f.err"
  echo "    step 7: $(cat "$f")"
  check "$p: 7. cancel the (finished) run" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is True and r["status"] == "done", r' "$f"
}

# psql's table of `select seq, type, data from run_events ...` against the stream's events.
check_run_events() {
  local name=$1 file=$2
  check "$name" python3 -c '
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read().replace("\r", "")
rows = [m.groups() for m in re.finditer(r"^\s*(\d+)\s*\|\s*(\w+)\s*\|\s*(\{.*\})\s*$", text, re.M)]
ev = [l.split() for l in sys.argv[2].splitlines()]
assert "seq | type" in re.sub(r"\s+", " ", text), "no psql header"
assert f"({len(ev)} rows)" in text, f"expected ({len(ev)} rows)"
assert [(int(s), t) for s, t, _ in rows] == [(int(i), t) for i, t in ev], (rows, ev)
assert rows[-1][2] == "{\"status\": \"done\"}", rows[-1]' "$file" "$EVENTS"
}

# ---------------------------------------------------------------- 1. a container engine

part_engine() {
  echo "=== the stack with a container engine (make up / make psql / make down)"
  local t0=$SECONDS
  export CHATBOT_DATA_DIR=$out/engine-data
  engine=$(scripts/compose engine)
  echo "--- engine: $engine"
  if [ "$engine" = none ]; then
    bad "engine: a container engine answers (docker, or podman installed from Debian)"
    return
  fi
  check "engine: port 8000 is free before the test" port_free || return
  local project volume
  project=$(basename "$repo" | tr 'A-Z' 'a-z' | tr -cd -- '-_a-z0-9')
  volume=${project}_pgdata
  case "$engine" in
    podman) podman volume exists "$volume" || created_volume=$volume ;;
    docker) docker volume inspect "$volume" >/dev/null 2>&1 || created_volume=$volume ;;
  esac
  fresh_db=fresh
  if [ -z "${created_volume:-}" ]; then
    fresh_db=kept
    echo "--- the volume $volume of an earlier make up exists: the test uses it and keeps it"
  fi

  echo "--- make up (scripts/compose up: images, postgres, migrate, api)"
  active_env=(CHATBOT_DATA_DIR="$CHATBOT_DATA_DIR")
  local t_up=$SECONDS
  if make --no-print-directory up; then
    ok "engine: make up ($engine; $((SECONDS - t_up)) s)"
  else
    bad "engine: make up ($engine)"
    stack_down
    return
  fi

  seed_steps_1_to_7 "$engine"

  local f=$out/$engine-step8.txt
  echo "--- step 8, as the seed's README writes it for this engine:"
  if [ "$engine" = podman ]; then
    echo "    podman-compose exec postgres psql -U chatbot -d chatbot -P pager=off -c \"select seq, type, data from run_events where run_id='\${RUN_ID}' order by seq;\""
    podman-compose exec postgres psql -U chatbot -d chatbot -P pager=off -c "select seq, type, data from run_events where run_id='${RUN_ID}' order by seq;" >"$f" 2>"$f.err" </dev/null
  else
    echo "    docker compose exec postgres psql -U chatbot -d chatbot -P pager=off -c \"select seq, type, data from run_events where run_id='\${RUN_ID}' order by seq;\""
    docker compose exec -T postgres psql -U chatbot -d chatbot -P pager=off -c "select seq, type, data from run_events where run_id='${RUN_ID}' order by seq;" >"$f" 2>"$f.err" </dev/null
  fi
  show "$f"
  check_run_events "$engine: 8. the run's events in PostgreSQL's run_events, as streamed" "$f"

  f=$out/$engine-psql.txt
  echo "select count(*) as users from users where name = 'smoke-user';" | make --no-print-directory psql >"$f" 2>&1
  show "$f"
  check "engine: make psql opens psql on the stack's database" grep -q "(1 row)" "$f"

  echo "--- make down"
  active_env=()
  if make --no-print-directory down; then ok "engine: make down"; else bad "engine: make down"; fi
  local left=""
  case "$engine" in
    podman) left=$(podman ps -a -q --filter "label=io.podman.compose.project=$project") ;;
    docker) left=$(docker compose ps -q) ;;
  esac
  check "engine: after make down, no container is left and port 8000 is free" \
    bash -c '[ -z "$1" ] && ! (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null' _ "$left"
  echo "--- $engine part: $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- 2. no engine

part_fallback() {
  echo "=== without any engine: local PostgreSQL under data/pg and the binary on 8000"
  local t0=$SECONDS
  export CHATBOT_COMPOSE_ENGINE=none CHATBOT_DATA_DIR=$out/fallback-data
  fresh_db=fresh
  check "fallback: port 8000 is free before the test" port_free || return
  active_env=(CHATBOT_COMPOSE_ENGINE=none CHATBOT_DATA_DIR="$CHATBOT_DATA_DIR")
  if make --no-print-directory up; then ok "fallback: make up"; else bad "fallback: make up"; stack_down; return; fi
  local pid
  pid=$(cat "$CHATBOT_DATA_DIR/chatbot.pid")
  check "fallback: the cluster is under the data directory, the pid file names the API" \
    test -s "$CHATBOT_DATA_DIR/pg/data/PG_VERSION" -a -n "$pid"

  seed_steps_1_to_7 fallback

  local f=$out/fallback-step8.txt
  echo "select seq, type, data from run_events where run_id='${RUN_ID}' order by seq;" | make --no-print-directory psql >"$f" 2>&1
  show "$f"
  check_run_events "fallback: 8. the run's events in run_events (make psql)" "$f"

  active_env=()
  if make --no-print-directory down; then ok "fallback: make down"; else bad "fallback: make down"; fi
  check "fallback: after make down the API and PostgreSQL are stopped" bash -c '
    ! kill -0 "$1" 2>/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null &&
    [ ! -e "$2/chatbot.pid" ] && [ ! -e "$2/pg/data/postmaster.pid" ]' _ "$pid" "$CHATBOT_DATA_DIR"

  active_env=(CHATBOT_COMPOSE_ENGINE=none CHATBOT_DATA_DIR="$CHATBOT_DATA_DIR")
  if scripts/compose up >/dev/null 2>&1; then
    f=$out/fallback-again.txt
    scripts/compose psql -At -c "select count(*) from run_events where run_id='${RUN_ID}';" >"$f" 2>&1 </dev/null
    check "fallback: a second make up keeps the data ($(cat "$f") events of the run)" \
      test "$(cat "$f")" = "$(echo "$EVENTS" | wc -l)"
  else
    bad "fallback: a second make up"
  fi
  stack_down >/dev/null
  unset CHATBOT_COMPOSE_ENGINE CHATBOT_DATA_DIR
  echo "--- fallback part: $((SECONDS - t0)) s"
}

t_start=$SECONDS
for part in $parts; do
  case "$part" in
    engine) part_engine ;;
    fallback) part_fallback ;;
    *) echo "unknown part '$part' (engine, fallback)" >&2; exit 2 ;;
  esac
done

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "compose: $passed passed, $failed failed ($((SECONDS - t_start)) s)"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]

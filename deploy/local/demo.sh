#!/usr/bin/env bash
# The demo: local stack up, topics, ingest and a worker in the background, the example alerts posted,
# then the incidents they became. Everything it starts stops with `make down` (deploy/local/stack.sh down).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
stack_dir=${FIREBREAK_STACK_DIR:-$repo/.firebreak/stack}
export FIREBREAK_STACK_DIR=$stack_dir
logs=$stack_dir/logs
bin=$repo/.venv/bin
firebreak=$bin/firebreak
python=${PYTHON:-$bin/python}
say() { printf '\n==> %s\n' "$*"; }

say "starting the local stack (Kafka from Maven Central, Redis)"
"$here/stack.sh" up

# The Firebreak processes talk to what the stack started (or to the services the caller pointed at).
export FIREBREAK_KAFKA_BOOTSTRAP=${FIREBREAK_KAFKA_BOOTSTRAP:-127.0.0.1:${FIREBREAK_KAFKA_PORT:-9092}}
export FIREBREAK_REDIS_URL=${FIREBREAK_REDIS_URL:-redis://127.0.0.1:${FIREBREAK_REDIS_PORT:-6379}/0}
ingest_port=${FIREBREAK_INGEST_PORT:-8080}
metrics_port=${FIREBREAK_WORKER_METRICS_PORT:-9465}
export FIREBREAK_INGEST_PORT=$ingest_port FIREBREAK_WORKER_METRICS_PORT=$metrics_port

# A bearer token for this machine, kept in a file outside git (.firebreak/ is ignored).
token_file=$repo/.firebreak/token
if [ ! -s "$token_file" ]; then
  mkdir -p "$(dirname "$token_file")"
  (umask 077; "$python" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$token_file")
fi
export FIREBREAK_INGEST_TOKENS_FILE=$token_file
token=$(cat "$token_file")

# Runbooks: the shipped examples, reaching only the stand-in API (examples/standin.py) on 127.0.0.1:8089.
deploy_token_file=$repo/.firebreak/deploy-api-token
if [ ! -s "$deploy_token_file" ]; then
  (umask 077; "$python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$deploy_token_file")
fi
export FIREBREAK_RUNBOOKS_DIR=${FIREBREAK_RUNBOOKS_DIR:-$repo/runbooks}
export FIREBREAK_NOTIFICATIONS_FILE=${FIREBREAK_NOTIFICATIONS_FILE:-$repo/examples/notifications.yaml}
export FIREBREAK_ACTIONS_ALLOWED_HOSTS=${FIREBREAK_ACTIONS_ALLOWED_HOSTS:-127.0.0.1:8089}
export FIREBREAK_ACTIONS_ALLOWED_COMMANDS=${FIREBREAK_ACTIONS_ALLOWED_COMMANDS:-df,find}
export FIREBREAK_PAGE_CHANNEL=${FIREBREAK_PAGE_CHANNEL:-oncall}
export FIREBREAK_SECRETS_DIR=$repo/.firebreak/secrets
mkdir -p "$FIREBREAK_SECRETS_DIR"
cp "$deploy_token_file" "$FIREBREAK_SECRETS_DIR/DEPLOY_API_TOKEN"
# Paging: the pager webhook's signing key and the key of the signed ack/resolve links in pages.
for key in PAGER_SIGNING_KEY LINK_SIGNING_KEY; do
  [ -s "$FIREBREAK_SECRETS_DIR/$key" ] || (umask 077; "$python" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$FIREBREAK_SECRETS_DIR/$key")
done
export FIREBREAK_PUBLIC_URL=${FIREBREAK_PUBLIC_URL:-http://127.0.0.1:$ingest_port}

say "checking the runbooks (firebreak runbook lint)"
"$firebreak" runbook lint

say "creating topics"
"$firebreak" topics create

start() { # start NAME: run `firebreak NAME` in the background unless the pid file names a live one
  local name=$1 pidfile=$stack_dir/$1.pid
  local pattern="firebreak $name"
  [ "$name" = standin ] && pattern="examples/standin.py"
  if [ -f "$pidfile" ] && tr '\0' ' ' <"/proc/$(cat "$pidfile")/cmdline" 2>/dev/null | grep -q "$pattern"; then
    echo "$name: already running (pid $(cat "$pidfile"))"
    return
  fi
  if [ "$name" = standin ]; then
    setsid nohup "$python" "$repo/examples/standin.py" --port 8089 --token-file "$deploy_token_file" \
      --log "$logs/standin-requests.jsonl" >>"$logs/standin.log" 2>&1 </dev/null &
  else
    setsid nohup "$firebreak" "$name" >>"$logs/$name.log" 2>&1 </dev/null &
  fi
  echo $! >"$pidfile"
  echo "$name: started (pid $!), log $logs/$name.log"
}

say "starting ingest on 127.0.0.1:$ingest_port, a worker (metrics on 127.0.0.1:$metrics_port) and the stand-in API on 127.0.0.1:8089"
start standin
start ingest
start worker
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$ingest_port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$ingest_port/readyz" >/dev/null || { tail -n 20 "$logs/ingest.log"; echo "ingest did not become ready" >&2; exit 1; }

metric_sum() { # metric_sum NAME: the sum of a counter over its labels on the worker's /metrics (0 if absent,
  # or while the worker is still starting: with pipefail, a refused curl would end the demo)
  { curl -fsS "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null || true; } | awk -v m="$1" 'index($0, m"{") == 1 || $1 == m {s += $NF} END {printf "%d", s}'
}
processed_before=$(metric_sum firebreak_alerts_processed_total)

say "filling in the read model from incident-events if Redis lost it (firebreak readmodel rebuild)"
"$firebreak" readmodel rebuild

say "posting the example alerts"
accepted=0
for file in "$repo"/examples/*.json; do
  case "$(basename "$file")" in
    *alertmanager*) path=/api/v1/alerts/alertmanager ;;
    *) path=/api/v1/alerts ;;
  esac
  response=$(curl -sS -w '\n%{http_code}' -X POST "http://127.0.0.1:$ingest_port$path" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' --data-binary "@$file")
  code=${response##*$'\n'}
  body=${response%$'\n'*}
  echo "$(basename "$file") -> $path: HTTP $code $body"
  [ "$code" = 202 ] || { echo "the example was not accepted" >&2; exit 1; }
  accepted=$((accepted + $("$python" -c 'import json,sys; print(json.loads(sys.argv[1])["accepted"])' "$body")))
done

say "waiting for the worker to process $accepted alerts"
for i in $(seq 1 240); do
  done_count=$(( $(metric_sum firebreak_alerts_processed_total) - processed_before ))
  # Finished when every accepted alert went through dedup and the read model has caught up with the events.
  if [ "$done_count" -ge "$accepted" ] && \
     [ "$(metric_sum firebreak_incident_events_total)" = "$(metric_sum firebreak_read_model_writes_total)" ]; then
    echo "processed after ~$((i / 2)) s"
    break
  fi
  [ $((i % 20)) = 0 ] && echo "  ... $done_count of $accepted processed (the worker may still be joining its consumer group)"
  sleep 0.5
done

say "runbooks the incidents triggered (firebreak runs list)"
# Wait until every run finished or waits for a person (restart-service pauses 5 s before its health check).
busy='import json,sys; print(sum(not (r["status"] in ("succeeded","failed","unknown") or any(s["status"] == "waiting" and s["action"] == "approval" for s in r["steps"].values())) for r in json.load(sys.stdin)))'
for _ in $(seq 1 60); do
  [ "$("$firebreak" runs list --json | "$python" -c "$busy")" = 0 ] && break
  sleep 0.5
done
"$firebreak" runs list
echo
echo "requests the stand-in API received (deploy API and webhook receivers):"
"$python" -c 'import json,sys; [print("  %-5s %s" % (r["method"], r["path"])) for r in map(json.loads, open(sys.argv[1]))]' "$logs/standin-requests.jsonl"
waiting=$("$firebreak" runs list --json --status waiting | "$python" -c 'import json,sys; d=json.load(sys.stdin); print(d[0]["id"] if d else "")')
if [ -n "$waiting" ]; then
  echo
  echo "run $waiting waits for a human: firebreak runs show $waiting; firebreak runs approve $waiting --actor you"
fi

say "incidents"
"$firebreak" incidents list
# Show the open incident with the most alerts: the one the example storm collapsed.
first=$("$firebreak" incidents list --json --status open | "$python" -c 'import json,sys; d=json.load(sys.stdin); print(max(d, key=lambda i: i["alert_count"])["id"] if d else "")')
if [ -n "$first" ]; then
  say "firebreak incidents show $first"
  "$firebreak" incidents show "$first"
fi

# Pages the stand-in received for one incident: "<level> <address or channel> <kind>" per line.
pages_of() {
  "$python" - "$logs/standin-requests.jsonl" "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    body = r.get("body") if isinstance(r.get("body"), dict) else {}
    if r["path"] in ("/hooks/pager", "/hooks/chat", "/hooks/oncall") and body.get("incident", {}).get("id") == sys.argv[2] \
            and body.get("kind") in ("page", "acknowledge"):
        print(body.get("level") or "-", body.get("address") or r["path"].rsplit("/", 1)[1], body["kind"])
PY
}
# Whether the stand-in received a page for incident $1 matching the grep pattern $2. The pages are read whole
# before grep looks: in `pages_of | grep -q` grep exits at the first match, closing the pipe while Python still
# writes, and Python prints a BrokenPipeError traceback.
has_page() { grep -q -- "$2" <<<"$(pages_of "$1")"; }
status_of() { "$firebreak" incidents show "$1" --json | "$python" -c 'import json,sys; print(json.load(sys.stdin)["status"])'; }

if [ -n "$first" ]; then
  say "paging: who is on call for the 'default' escalation policy (firebreak oncall who --team default)"
  "$firebreak" oncall who --team default
  if [ "$(status_of "$first")" = triggered ]; then
    say "the critical incident $first paged level 1 (whoever is on call, and the chat channel)"
    for _ in $(seq 1 40); do has_page "$first" '^1 ' && break; sleep 0.5; done
    pages_of "$first"
    say "nobody acknowledges: level 2 (carol) is paged 15 s after level 1"
    for _ in $(seq 1 60); do has_page "$first" '^2 carol page' && break; sleep 0.5; done
    pages_of "$first"
    say "firebreak incidents ack $first --actor you   (escalation stops; everyone paged hears of the ack)"
    "$firebreak" incidents ack "$first" --actor you --comment "looking into it"
    acked_at=$(date +%s)
    for _ in $(seq 1 40); do has_page "$first" 'acknowledge' && break; sleep 0.5; done
    pages_of "$first"
  else
    echo "$first is already $(status_of "$first") (an earlier demo run acknowledged it): nothing more to page"
  fi
fi

if [ -n "$first" ]; then
  say "why was I paged? (firebreak explain --incident $first)"
  for _ in $(seq 1 20); do "$firebreak" explain --incident "$first" >/dev/null 2>&1 && break; sleep 0.5; done
  "$firebreak" explain --incident "$first"
fi

say "rules as code: the worked example's fixtures on a virtual clock (firebreak check)"
"$firebreak" check "$repo/examples/rules-as-code/tests"

say "replaying a generated alert storm through the same engine and the demo's escalation config, offline (firebreak replay)"
"$python" "$repo/examples/storm.py" --out "$stack_dir/storm.jsonl"
"$firebreak" replay --policies "$repo/config/correlation.yaml" --services "$repo/examples/services.yaml" \
  --notifications "$FIREBREAK_NOTIFICATIONS_FILE" "$stack_dir/storm.jsonl"

if [ -n "${acked_at:-}" ]; then
  # Level 3 (the oncall channel) was due 15 s after level 2; the ack came before it.
  wait_for=$((acked_at + 16 - $(date +%s)))
  [ "$wait_for" -gt 0 ] && sleep "$wait_for"
  say "level 3 was due by now; pages for $first after the ack:"
  if has_page "$first" '^3 '; then echo "level 3 was paged: the ack did not stop escalation" >&2; exit 1; fi
  echo "none: the acknowledgement stopped the escalation"
fi

cat <<MSG

==> the stack keeps running so you can explore:
    export FIREBREAK_REDIS_URL=$FIREBREAK_REDIS_URL
    $firebreak incidents list
    curl -H "Authorization: Bearer \$(cat $token_file)" http://127.0.0.1:$ingest_port/api/v1/incidents
    curl http://127.0.0.1:$ingest_port/metrics        # ingest metrics
    curl http://127.0.0.1:$metrics_port/metrics        # worker metrics
    logs: $logs
    ack or resolve:  FIREBREAK_INGEST_TOKENS_FILE=$token_file $firebreak incidents ack <id> --actor you
    on call:         FIREBREAK_NOTIFICATIONS_FILE=$FIREBREAK_NOTIFICATIONS_FILE $firebreak oncall who --team default
    pages received:  $logs/standin-requests.jsonl
    why (not) paged: $firebreak explain <fingerprint | name=value ...>   or   $firebreak explain --incident <id>
    stop everything: make down
MSG

#!/usr/bin/env bash
# The local real stack: Apache Kafka (KRaft, single node, jars from Maven Central) and Redis,
# on loopback. `up` is idempotent, `down` stops exactly the processes this script started
# (and the Firebreak processes the demo started), `status` says what runs and where logs are.
#
# Environment (all optional):
#   FIREBREAK_STACK_DIR            state folder: pids, logs, Kafka data   (default: <repo>/.firebreak/stack)
#   FIREBREAK_KAFKA_PORT           broker port on 127.0.0.1              (default: 9092)
#   FIREBREAK_KAFKA_CONTROLLER_PORT KRaft controller port                 (default: broker port + 1)
#   FIREBREAK_KAFKA_SASL_PORT      optional SASL_PLAINTEXT listener (user `firebreak`, password FIREBREAK_KAFKA_SASL_PASSWORD)
#   FIREBREAK_REDIS_PORT           Redis port on 127.0.0.1               (default: 6379)
#   FIREBREAK_KAFKA_CACHE          where Maven copies the broker jars    (default: ~/.cache/firebreak/kafka)
#   FIREBREAK_KAFKA_BOOTSTRAP      an existing Kafka: checked, nothing started
#   FIREBREAK_REDIS_URL            an existing Redis: checked, nothing started
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
stack_dir=${FIREBREAK_STACK_DIR:-$repo/.firebreak/stack}
kafka_port=${FIREBREAK_KAFKA_PORT:-9092}
controller_port=${FIREBREAK_KAFKA_CONTROLLER_PORT:-$((kafka_port + 1))}
sasl_port=${FIREBREAK_KAFKA_SASL_PORT:-}
redis_port=${FIREBREAK_REDIS_PORT:-6379}
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
kafka_cache=${FIREBREAK_KAFKA_CACHE:-$HOME/.cache/firebreak/kafka}/$kafka_version
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=python3
logs=$stack_dir/logs

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# pid_alive NAME PATTERN: true when NAME.pid names a live process whose command line matches PATTERN,
# so a recycled pid is never mistaken for ours.
pid_alive() {
  local pidfile=$stack_dir/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

stop_pid() { # stop_pid NAME PATTERN
  local name=$1 pattern=$2 pid i
  if pid_alive "$name" "$pattern"; then
    pid=$(cat "$stack_dir/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 60); do
      pid_alive "$name" "$pattern" || break
      sleep 0.5
    done
    if pid_alive "$name" "$pattern"; then
      log "$name (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$stack_dir/$name.pid"
}

kafka_answers() { # kafka_answers BOOTSTRAP: the broker lists topics
  "$python" - "$1" <<'PY' >/dev/null 2>&1
import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=3000)
admin.list_topics()
admin.close()
PY
}

fetch_kafka() {
  if [ -f "$kafka_cache/.complete" ]; then return; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka $kafka_version from Maven Central; install it (apt-get install maven)"
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka; install it (apt-get install openjdk-17-jre-headless)"
  log "fetching Apache Kafka $kafka_version and its runtime dependencies from Maven Central into $kafka_cache"
  mkdir -p "$kafka_cache"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$kafka_cache" >"$stack_dir/maven.log" 2>&1 \
    || { tail -n 30 "$stack_dir/maven.log" >&2; die "Maven could not fetch Kafka (full log: $stack_dir/maven.log)"; }
  ls "$kafka_cache"/kafka_2.13-"$kafka_version".jar >/dev/null || die "kafka_2.13-$kafka_version.jar missing after Maven ran"
  touch "$kafka_cache/.complete"
}

write_kafka_config() {
  cat >"$stack_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$controller_port${sasl_port:+,SASL_PLAINTEXT://127.0.0.1:$sasl_port}
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port${sasl_port:+,SASL_PLAINTEXT://127.0.0.1:$sasl_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
log.dirs=$stack_dir/kafka-data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
PROPS
  if [ -n "$sasl_port" ]; then
    # A second listener that needs SASL/PLAIN (user firebreak), for trying Firebreak's SASL settings locally.
    cat >>"$stack_dir/server.properties" <<PROPS
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_firebreak="${FIREBREAK_KAFKA_SASL_PASSWORD:?set FIREBREAK_KAFKA_SASL_PASSWORD with FIREBREAK_KAFKA_SASL_PORT}";
PROPS
  fi
  cat >"$stack_dir/log4j.properties" <<PROPS
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$logs/kafka.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.log=WARN
log4j.logger.org.apache.kafka.storage=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.coordinator.group=WARN
log4j.logger.org.apache.kafka.coordinator.group=WARN
PROPS
}

start_kafka() {
  if [ -n "${FIREBREAK_KAFKA_BOOTSTRAP:-}" ]; then
    kafka_answers "$FIREBREAK_KAFKA_BOOTSTRAP" || die "FIREBREAK_KAFKA_BOOTSTRAP=$FIREBREAK_KAFKA_BOOTSTRAP does not answer; unset it to start a local broker"
    log "kafka: using existing $FIREBREAK_KAFKA_BOOTSTRAP, nothing started"
    return
  fi
  if pid_alive kafka kafka.Kafka; then log "kafka: already running (pid $(cat "$stack_dir/kafka.pid"))"; return; fi
  fetch_kafka
  write_kafka_config
  local cp="$kafka_cache/*" java_opts="-Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j.configuration=file:$stack_dir/log4j.properties"
  [ -f "$stack_dir/cluster.id" ] || java -cp "$cp" $java_opts kafka.tools.StorageTool random-uuid >"$stack_dir/cluster.id" 2>>"$logs/kafka.out"
  java -cp "$cp" $java_opts kafka.tools.StorageTool format -t "$(cat "$stack_dir/cluster.id")" \
      -c "$stack_dir/server.properties" --ignore-formatted >>"$logs/kafka.out" 2>&1 \
    || die "formatting KRaft storage failed (see $logs/kafka.out)"
  # setsid: the broker outlives the shell (make, pytest) that started it until `down`.
  setsid nohup java -cp "$cp" $java_opts kafka.Kafka "$stack_dir/server.properties" >>"$logs/kafka.out" 2>&1 </dev/null &
  echo $! >"$stack_dir/kafka.pid"
  local started=$SECONDS
  log "kafka: starting Apache Kafka $kafka_version on 127.0.0.1:$kafka_port (pid $!)"
  local i
  for i in $(seq 1 120); do
    if kafka_answers "127.0.0.1:$kafka_port"; then log "kafka: ready after $((SECONDS - started)) s"; return; fi
    pid_alive kafka kafka.Kafka || { tail -n 30 "$logs/kafka.out" "$logs/kafka.log" >&2 2>/dev/null; die "kafka exited during start (logs: $logs)"; }
    sleep 0.5
  done
  die "kafka did not answer on 127.0.0.1:$kafka_port within 60 s (logs: $logs)"
}

redis_answers() { "$python" -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping()" "$1" >/dev/null 2>&1; }

start_redis() {
  if [ -n "${FIREBREAK_REDIS_URL:-}" ]; then
    redis_answers "$FIREBREAK_REDIS_URL" || die "FIREBREAK_REDIS_URL=$FIREBREAK_REDIS_URL does not answer; unset it to start a local Redis"
    log "redis: using existing $FIREBREAK_REDIS_URL, nothing started"
    return
  fi
  if pid_alive redis redis-server; then log "redis: already running (pid $(cat "$stack_dir/redis.pid"))"; return; fi
  if ! command -v redis-server >/dev/null; then
    log "redis: installing Debian's redis-server"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q >"$logs/apt.log" 2>&1 && $sudo apt-get install -y -q redis-server >>"$logs/apt.log" 2>&1 \
      || die "could not install redis-server (see $logs/apt.log)"
  fi
  # Append-only file in the stack folder: Redis keeps the read model, silences and changes for as long as
  # Kafka keeps its data in the same folder (`firebreak readmodel rebuild` restores incidents otherwise).
  redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes --dir "$stack_dir" \
    --pidfile "$stack_dir/redis.pid" --logfile "$logs/redis.log" --save "" --appendonly yes >/dev/null
  local i
  for i in $(seq 1 40); do
    if [ -s "$stack_dir/redis.pid" ] && redis_answers "redis://127.0.0.1:$redis_port/0"; then
      log "redis: ready on 127.0.0.1:$redis_port (pid $(cat "$stack_dir/redis.pid"))"; return
    fi
    sleep 0.25
  done
  die "redis did not answer on 127.0.0.1:$redis_port within 10 s (log: $logs/redis.log)"
}

cmd_up() {
  mkdir -p "$logs"
  start_redis
  start_kafka
  log "logs: $logs"
}

cmd_down() {
  # Firebreak processes first (started by demo.sh into the same folder), then the services.
  stop_pid ingest "firebreak ingest"
  stop_pid worker "firebreak worker"
  stop_pid standin "examples/standin.py"
  stop_pid kafka kafka.Kafka
  stop_pid redis redis-server
}

cmd_status() {
  local name pattern state rc=0
  for entry in "redis:redis-server:127.0.0.1:$redis_port" "kafka:kafka.Kafka:127.0.0.1:$kafka_port" \
               "ingest:firebreak ingest:" "worker:firebreak worker:" "standin:examples/standin.py:127.0.0.1:8089"; do
    IFS=: read -r name pattern addr port <<<"$entry"
    if pid_alive "$name" "$pattern"; then state="running (pid $(cat "$stack_dir/$name.pid"))"
    else state="stopped"; [ "$name" = redis ] || [ "$name" = kafka ] && rc=3; fi
    printf '%-7s %-22s %s\n' "$name" "${addr:+$addr:$port}" "$state"
  done
  printf 'logs:   %s\n' "$logs"
  return $rc
}

cmd_service() { # cmd_service start|stop kafka|redis
  mkdir -p "$logs"
  case "$1:${2:-}" in
    start:kafka) start_kafka ;;
    start:redis) start_redis ;;
    stop:kafka) stop_pid kafka kafka.Kafka ;;
    stop:redis) stop_pid redis redis-server ;;
    *) echo "usage: $0 $1 kafka|redis" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  start|stop) cmd_service "$1" "${2:-}" ;;
  *) echo "usage: $0 up|down|status|start SERVICE|stop SERVICE" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# bench-archive.sh: message throughput between online pairs with the
# message archive off and on (`make bench-archive`). For each setup it
# starts koi on a fresh data directory, registers the users, and runs
# koi-bench msg; then it prints one line per setup and the ratio to the
# archive-off run.
#
# Setups (BENCH_ARCHIVE_SETUPS, default "off sql http mongo"):
#   off    no archive
#   sql    archive in the sql plugin, SQLite (the plugin that also holds
#          the accounts)
#   sqltuned  the same with a larger WAL between checkpoints and a larger
#          page cache (see README, Message archive: performance)
#   pg     archive in the sql plugin on PostgreSQL (BENCH_PG_DSN, default
#          postgres://postgres@127.0.0.1:5432/test?sslmode=disable), in a
#          schema made for the run and dropped after it
#   http   archive through the http plugin in bin/rest-backend (the
#          reference REST service, SQLite) on a database of its own
#   mongo  archive in the mongo plugin, on a FerretDB of its own (SQLite);
#          FerretDB comes from scripts/ferretdb.sh
#   mongopg  the same with FerretDB on PostgreSQL (BENCH_PG_DSN), in a
#          database made for the run and dropped after it: which of
#          FerretDB and its storage limits the mongo row
#
# With taskset and two or more CPUs the server side (koi, its plugins,
# rest-backend and FerretDB) runs on CPU 0 and koi-bench on CPU 1, as in scripts/bench.sh;
# BENCH_PIN=0 leaves the scheduling to the kernel.
#
# Environment: BENCH_SECONDS (default 10), BENCH_PAIRS (default 500),
# BENCH_RATE (messages/s in total; default 0: as fast as the server takes
# them), BENCH_PORT (default 16222), BENCH_DIR (default: a new temp dir),
# BENCH_PROFILE=1 (save koi's CPU and heap profiles of each run).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin
secs=${BENCH_SECONDS:-10}
pairs=${BENCH_PAIRS:-500}
rate=${BENCH_RATE:-0}
port=${BENCH_PORT:-16222}
setups=${BENCH_ARCHIVE_SETUPS:-off sql http mongo}
dir=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/koi-bench-archive.XXXXXX")}
mkdir -p "$dir"

for b in koi koi-bench plugins/koi-backend-sql plugins/koi-backend-mongo plugins/koi-backend-http rest-backend; do
	[[ -x $bin/$b ]] || { echo "bench-archive: $bin/$b missing; run make build" >&2; exit 1; }
done

server_pin=() tool_pin=()
if [[ ${BENCH_PIN:-1} == 1 ]] && command -v taskset >/dev/null && (( $(nproc) >= 2 )); then
	server_pin=(taskset -c 0)
	tool_pin=(taskset -c 1)
fi

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

wait_port() {
	for _ in $(seq 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench-archive: nothing listens on port $1" >&2
	exit 1
}

# cpu_ticks PID prints the user + system CPU ticks the process used.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

ferret=""
if [[ " $setups " == *" mongo "* || " $setups " == *" mongopg "* ]]; then
	ferret=$("$root/scripts/ferretdb.sh")
fi

declare -A rates notes sustained
for setup in $setups; do
	d=$dir/$setup
	# Fresh, as the header says, also when BENCH_DIR is given again: a
	# database left by the run before would make this one insert into a
	# larger table, and its figures incomparable.
	rm -rf "$d"
	mkdir -p "$d"
	archive=""
	extra_block=""
	dsn="$d/koi.db"
	case $setup in
	off) ;;
	sql) archive='archive = "store"' ;;
	sqltuned)
		archive='archive = "store"'
		dsn="$d/koi.db?_pragma=wal_autocheckpoint(20000)&_pragma=cache_size(-131072)"
		;;
	pg)
		# The archive in the sql plugin on PostgreSQL (BENCH_PG_DSN), in
		# a schema of its own made for the run; the accounts stay on
		# SQLite. A bounded pool: the first messages of 1,000 users ask
		# for their archive preferences all at once, and more connections
		# than the server's max_connections fail them.
		pgdsn=${BENCH_PG_DSN:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
		pgschema="koi_bench_archive_$$"
		PGOPTIONS="-c client_min_messages=warning" psql -q "$pgdsn" -c "DROP SCHEMA IF EXISTS $pgschema CASCADE" -c "CREATE SCHEMA $pgschema" >/dev/null
		extra_block="plugin \"pg\" {
  command = \"$bin/plugins/koi-backend-sql\"
  config  = { driver = \"postgres\"  dsn = \"$pgdsn\"  schema = \"$pgschema\"  max_open_conns = 16 }
}"
		archive='archive = "pg"'
		;;
	mongo | mongopg)
		mkdir -p "$d/ferretdb"
		storage=(--handler=sqlite --sqlite-url="file:$d/ferretdb/")
		if [[ $setup == mongopg ]]; then
			# FerretDB keeps each MongoDB database as a schema of the
			# PostgreSQL database it is given: one made for the run.
			pgdsn=${BENCH_PG_DSN:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
			ferretpg="koi_bench_ferret_$$"
			PGOPTIONS="-c client_min_messages=warning" psql -q "$pgdsn" -c "DROP DATABASE IF EXISTS $ferretpg" -c "CREATE DATABASE $ferretpg" >/dev/null
			ferreturl=$(sed -E "s#^(postgres(ql)?://[^/]*)/[^?]*#\1/$ferretpg#" <<<"$pgdsn")
			storage=(--handler=postgresql --postgresql-url="$ferreturl")
		fi
		"${server_pin[@]}" "$ferret" --listen-addr="127.0.0.1:$((port + 3))" --state-dir="$d/ferretdb" \
			--debug-addr=- --telemetry=disable --log-level=error "${storage[@]}" >"$d/ferretdb.log" 2>&1 &
		pids+=($!)
		wait_port $((port + 3))
		extra_block="plugin \"mongo\" {
  command = \"$bin/plugins/koi-backend-mongo\"
  config  = { uri = \"mongodb://127.0.0.1:$((port + 3))/\"  database = \"koi\" }
}"
		archive='archive = "mongo"'
		;;
	http)
		"${server_pin[@]}" "$bin/rest-backend" -listen "127.0.0.1:$((port + 3))" -db "$d/rest.db" \
			-token bench-token -pprof "127.0.0.1:$((port + 4))" >"$d/rest-backend.log" 2>&1 &
		rest=$!
		pids+=($rest)
		wait_port $((port + 3))
		extra_block="plugin \"api\" {
  command = \"$bin/plugins/koi-backend-http\"
  config  = { base_url = \"http://127.0.0.1:$((port + 3))\"  features = [\"archive\"]  token = \"bench-token\" }
}"
		archive='archive = "api"'
		;;
	*) echo "bench-archive: unknown setup $setup" >&2; exit 1 ;;
	esac
	cat >"$d/koi.hcl" <<CONF
log { level = "info"  format = "text" }
listen "plain" { type = "c2s"  address = "127.0.0.1:$port"  starttls = "disabled" }
tls { cert_file = "$d/tls/cert.pem"  key_file = "$d/tls/key.pem" }
plugin "store" {
  command = "$bin/plugins/koi-backend-sql"
  config  = { driver = "sqlite"  dsn = "$dsn" }
}
$extra_block
host "localhost" {
  auth = "store"  roster = "store"  offline = "store"  vcard = "store"  private = "store"
  $archive
  registration = true
}
limits { auth_failures_per_ip = 0  auth_failures_per_account = 0  registrations_per_ip = 0 }
server { data_dir = "$d/data"  pprof = "127.0.0.1:$((port + 2))" }
CONF
	"${server_pin[@]}" "$bin/koi" -config "$d/koi.hcl" >"$d/koi.log" 2>&1 &
	koi=$!
	pids+=($koi)
	wait_port "$port"
	"${tool_pin[@]}" "$bin/koi-bench" register -addr "127.0.0.1:$port" -users $((2 * pairs)) -c 4 -q >"$d/register.txt"
	args=(-addr "127.0.0.1:$port" -tls none -mech SCRAM-SHA-1 -pairs "$pairs" -duration "${secs}s" -pid "$koi" -label "archive-$setup" -json "$d/msg.json" -q)
	if (( rate > 0 )); then args+=(-rate "$rate"); fi
	if [[ ${BENCH_PROFILE:-} == 1 ]]; then args+=(-pprof "http://127.0.0.1:$((port + 2))" -profile-dir "$d/profiles"); fi
	echo "== archive $setup" >&2
	rest_ticks0=""
	[[ $setup != http ]] || rest_ticks0=$(cpu_ticks "$rest")
	rest_profile=""
	if [[ $setup == http && ${BENCH_PROFILE:-} == 1 ]]; then
		# The service's own CPU over the whole run: logins, warm-up and
		# the measured seconds.
		mkdir -p "$d/profiles"
		(curl -s -o "$d/profiles/cpu-rest-backend.pb.gz" \
			"http://127.0.0.1:$((port + 4))/debug/pprof/profile?seconds=$((secs + 10))") &
		rest_profile=$!
	fi
	"${tool_pin[@]}" "$bin/koi-bench" msg "${args[@]}" >"$d/msg.txt"
	[[ -z $rest_profile ]] || wait "$rest_profile" || true
	if [[ -n $rest_ticks0 ]]; then
		# koi-bench counts koi and its plugins; the service is a process
		# of its own. Its CPU over the whole run (warm-up and drain too)
		# per message sent.
		sent=$(sed -n 's/.*"sent": \([0-9]*\).*/\1/p' "$d/msg.json" | head -1)
		rest_us=$(awk -v t=$(( $(cpu_ticks "$rest") - rest_ticks0 )) -v hz="$(getconf CLK_TCK)" -v n="${sent:-0}" \
			'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "?" }')
		echo "archive-http  rest-backend CPU per message sent        ${rest_us}µs" >>"$d/msg.txt"
		notes[$setup]=" + rest-backend ${rest_us}µs CPU/msg"
	fi
	if [[ $setup != off ]]; then
		# Sustained rate: the run ends with a backlog in the journal
		# (batches the plugin has not stored yet); wait for it to drain
		# and count that time too. delivered / (seconds + drain) is a
		# lower bound of the rate the archive sustains, since the drain
		# also stores the warm-up's backlog.
		journal="$d/data/archive-journal/localhost.journal"
		t0=$(date +%s.%N)
		for _ in $(seq 1800); do
			[[ -s $journal ]] || break
			sleep 0.1
		done
		drain=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
		delivered=$(sed -n 's/.*"delivered": \([0-9]*\).*/\1/p' "$d/msg.json" | head -1)
		run=$(sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p' "$d/msg.json" | head -1)
		sustained[$setup]=$(awk -v n="${delivered:-0}" -v s="${run:-$secs}" -v d="$drain" 'BEGIN { printf "%.0f", n / (s + d) }')
		echo "archive-$setup  journal drained ${drain}s after the run; sustained ${sustained[$setup]} msg/s" >>"$d/msg.txt"
	fi
	cat "$d/msg.txt"
	rates[$setup]=$(sed -n 's/.*"per_second": \([0-9.e+]*\).*/\1/p' "$d/msg.json" | head -1)
	kill -TERM "$koi"; wait "$koi" 2>/dev/null || true
	[[ $setup != pg ]] || PGOPTIONS="-c client_min_messages=warning" psql -q "$pgdsn" -c "DROP SCHEMA IF EXISTS $pgschema CASCADE" >/dev/null
	if [[ $setup == mongo || $setup == mongopg || $setup == http ]]; then cleanup; pids=(); fi
	[[ $setup != mongopg ]] || PGOPTIONS="-c client_min_messages=warning" psql -q "$pgdsn" -c "DROP DATABASE IF EXISTS $ferretpg" >/dev/null
done

echo
echo "message throughput between $pairs online pairs, ${secs}s each (results in $dir):"
base=${rates[off]:-}
for setup in $setups; do
	r=${rates[$setup]:-?}
	if [[ -n $base && $r != "?" ]]; then
		printf '  archive %-5s %10.0f msg/s  %5.1f%% of archive off%s\n' "$setup" "$r" "$(awk -v a="$r" -v b="$base" 'BEGIN{print 100*a/b}')" "${notes[$setup]:-}"
		if [[ -n ${sustained[$setup]:-} ]]; then
			printf '  archive %-5s %10.0f msg/s  %5.1f%% of archive off, sustained (journal drained)\n' "$setup" "${sustained[$setup]}" \
				"$(awk -v a="${sustained[$setup]}" -v b="$base" 'BEGIN{print 100*a/b}')"
		fi
	else
		printf '  archive %-5s %10s msg/s\n' "$setup" "$r"
	fi
done

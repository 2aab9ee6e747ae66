#!/usr/bin/env bash
# static.sh starts and stops a real static-ct-api (tiled) CT log on 127.0.0.1
# for tests: TesseraCT v0.1.1's POSIX server (`posix`, which takes submissions
# and writes the log's read side as files) plus scripts/peers/staticserve, a
# read-only file server for those files.
#
#   static.sh start DIR ROOTS_PEM   # writes DIR/env (CT_SUBMISSION_URL, ...)
#   static.sh stop DIR              # stops what start started
#
# DIR/env holds
#   CT_SUBMISSION_URL  http://127.0.0.1:PORT/tessera  (add-chain, add-pre-chain)
#   CT_MONITORING_URL  http://127.0.0.1:PORT2  (checkpoint, tile/..., issuer/...)
#   CT_ORIGIN          127.0.0.1/tessera  (checkpoint origin, note key name)
#   CT_KEY             the log's public key, base64 DER SubjectPublicKeyInfo
#
# The origin carries no port: TesseraCT requires it to equal the submission
# URL's host and path, and a port picked at random would make it differ from
# run to run, so configs must give the origin explicitly.
#
# TesseraCT lays its storage directory out exactly as static-ct-api's
# monitoring prefix: DIR/storage/checkpoint, tile/<level>/<index>[.p/<width>],
# tile/data/<index>[.p/<width>] and issuer/<hex sha256>; it also keeps private
# state (dedupe database, tree state, locks) in DIR/storage/.state. So the file
# server's root is DIR/storage itself, and it refuses names starting with a dot.
#
# Both commands are idempotent: start on a DIR whose log is up is a no-op,
# start on a DIR with leftovers stops them and starts an empty log, stop on a
# stopped DIR does nothing. Every start begins with an empty log.
#
# Works as root on a fresh Debian 12 machine with Go installed: openssl comes
# from apt when absent; posix and fsck (TesseraCT's read-side verifier, for
# tests that want it) are built once with `go install` into
# ${CTWATCHTEST_PEERS_BIN:-$HOME/.cache/ctwatch-peers/bin}; staticserve is
# built from this checkout into DIR at every start (a link step once cached).
# Everything listens on 127.0.0.1 only, on ports picked free at start.
#
# Environment:
#   CTWATCHTEST_PEERS_BIN      where the binaries live (built there when absent)
#   CTWATCHTEST_PEERS_TIMEOUT  seconds to wait for the log to answer (default 90)
set -euo pipefail

TESSERACT_VERSION=v0.1.1
LOG_PREFIX=tessera

# Canonical, because owned() compares it with /proc/PID/exe.
BIN=$(realpath -m "${CTWATCHTEST_PEERS_BIN:-$HOME/.cache/ctwatch-peers/bin}")
READY_TIMEOUT=${CTWATCHTEST_PEERS_TIMEOUT:-90}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODULE_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

die() {
	echo "static.sh: $*" >&2
	exit 1
}

say() {
	echo "static.sh: $*" >&2
}

usage() {
	echo "usage: $0 start DIR ROOTS_PEM | stop DIR" >&2
	exit 2
}

ensure_tools() {
	command -v go >/dev/null || die "go is not on PATH"
	if ! command -v openssl >/dev/null; then
		[ "$(id -u)" -eq 0 ] || die "need root to install openssl (apt-get)"
		say "installing openssl with apt-get"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
	fi
}

# ensure_binaries builds TesseraCT's posix and fsck into $BIN when absent.
ensure_binaries() {
	local need=()
	[ -x "$BIN/posix" ] || need+=("github.com/transparency-dev/tesseract/cmd/tesseract/posix@$TESSERACT_VERSION")
	[ -x "$BIN/fsck" ] || need+=("github.com/transparency-dev/tesseract/cmd/fsck@$TESSERACT_VERSION")
	[ ${#need[@]} -gt 0 ] || return 0
	mkdir -p "$BIN"
	local t0=$SECONDS tmp
	tmp=$(mktemp -d)
	say "building ${need[*]} (takes a minute the first time)"
	# Outside any module, so the project's go.mod plays no part.
	(cd "$tmp" && GOBIN="$BIN" go install "${need[@]}") || {
		rm -rf "$tmp"
		die "go install of tesseract failed"
	}
	rm -rf "$tmp"
	say "built binaries in $((SECONDS - t0)) s"
}

# build_staticserve builds this checkout's file server into DIR.
build_staticserve() {
	(cd "$MODULE_ROOT" && go build -o "$DIR/staticserve" ./scripts/peers/staticserve) >"$DIR/build.log" 2>&1 || {
		cat "$DIR/build.log" >&2
		die "go build ./scripts/peers/staticserve failed"
	}
}

# port_in_use reports whether something accepts TCP connections on port $1.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

PICKED=" "
# free_port VAR sets VAR to a port on 127.0.0.1 that nothing listens on and
# that this run has not picked yet. (It assigns rather than prints: a command
# substitution would run it in a subshell and lose PICKED.)
free_port() {
	local p _ lo=10000 hi=32768
	# Stay below the kernel's ephemeral range, where outgoing connections
	# take their local ports and could grab ours between probe and bind.
	if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
		read -r hi _ </proc/sys/net/ipv4/ip_local_port_range
	fi
	[ "$hi" -gt $((lo + 1000)) ] || {
		lo=20000
		hi=30000
	}
	for _ in $(seq 1 200); do
		p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
		case "$PICKED" in *" $p "*) continue ;; esac
		if ! port_in_use "$p"; then
			PICKED="$PICKED$p "
			printf -v "$1" '%s' "$p"
			return
		fi
	done
	die "no free port found"
}

# launch NAME CMD... starts CMD in DIR in the background with its output in
# DIR/NAME.log and its pid in DIR/NAME.pid.
launch() {
	local name=$1
	shift
	(cd "$DIR" && exec "$@") </dev/null >"$DIR/$name.log" 2>&1 &
	echo $! >"$DIR/$name.pid"
}

# pid_running reports whether pid $1 exists and is not a zombie.
pid_running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# started reports whether the process launched as $1 by this run is still
# there (right after launch it may not have exec'd its binary yet).
started() {
	local f=$DIR/$1.pid pid
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -n "$pid" ] && pid_running "$pid"
}

# alive reports whether the pid recorded for $1 by an earlier run still runs
# one of our binaries.
alive() {
	started "$1" && owned "$(cat "$DIR/$1.pid")"
}

# owned reports whether pid $1 runs one of our binaries (guards against pid
# reuse after a reboot or a long pause).
owned() {
	local exe
	exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
	case "$exe" in "$BIN/posix" | "$DIR/staticserve" | "$DIR/staticserve (deleted)") return 0 ;; esac
	return 1
}

PROCS="staticserve posix"

show_logs() {
	local f
	for f in "$DIR"/*.log; do
		[ -f "$f" ] || continue
		echo "----- tail of $f" >&2
		tail -n 25 "$f" >&2
	done
}

fail() {
	say "$*"
	show_logs
	stop_procs mine
	exit 1
}

# http_get PORT PATH prints the HTTP response (status line, headers, body)
# using bash's /dev/tcp, so no curl is needed.
http_get() {
	local port=$1 path=$2
	(
		exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
		timeout 5 cat <&3
	) 2>/dev/null
}

# stop_procs stops the servers recorded in DIR: SIGTERM, then SIGKILL to
# whatever still runs after 10 s. With "mine" it trusts the pids (this run
# launched them); otherwise it checks that each pid still runs our binary,
# so a pid reused since an old run is never killed.
stop_procs() {
	local check=alive name pid pids=() deadline
	[ "${1:-}" = mine ] && check=started
	for name in $PROCS; do
		[ -f "$DIR/$name.pid" ] || continue
		if "$check" "$name"; then
			pid=$(cat "$DIR/$name.pid")
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
		rm -f "$DIR/$name.pid"
	done
	deadline=$((SECONDS + 10))
	for pid in "${pids[@]}"; do
		while pid_running "$pid" && [ $SECONDS -lt $deadline ]; do
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	# Return only once they are gone, so their ports and files are free.
	deadline=$((SECONDS + 10))
	for pid in "${pids[@]}"; do
		while pid_running "$pid" && [ $SECONDS -lt $deadline ]; do
			sleep 0.05
		done
	done
}

cmd_start() {
	local roots=$1 t0=$SECONDS
	[ -f "$roots" ] || die "roots file $roots not found"
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd -P)

	local name all=1
	for name in $PROCS; do
		alive "$name" || all=0
	done
	if [ $all -eq 1 ] && [ -f "$DIR/env" ]; then
		say "already running in $DIR"
		cat "$DIR/env"
		return
	fi
	cmd_stop quiet

	ensure_tools
	ensure_binaries
	build_staticserve
	cp "$roots" "$DIR/roots.pem"
	# Every start is a new, empty log.
	rm -rf "$DIR/storage"
	mkdir -p "$DIR/storage"

	rm -f "$DIR/key.pem"
	openssl ecparam -name prime256v1 -genkey -noout -out "$DIR/key.pem" 2>"$DIR/openssl.log" ||
		fail "openssl ecparam failed"
	local ct_key
	ct_key=$(openssl pkey -in "$DIR/key.pem" -pubout -outform DER 2>>"$DIR/openssl.log" | base64 -w0) ||
		fail "openssl pkey failed"
	[ -n "$ct_key" ] || fail "openssl pkey printed no key"

	# The readiness budget starts now: building the binaries does not eat it.
	local t_ready=$SECONDS submit_port read_port
	local origin="127.0.0.1/$LOG_PREFIX"
	free_port submit_port
	free_port read_port

	# TesseraCT exports metrics over OTLP to localhost:4318 and logs an
	# error each time nobody is there; once an hour is enough noise.
	launch posix env OTEL_METRIC_EXPORT_INTERVAL=3600000 "$BIN/posix" \
		"--private_key=$DIR/key.pem" "--origin=$origin" "--path_prefix=/$LOG_PREFIX" \
		"--storage_dir=$DIR/storage" "--roots_pem_file=$DIR/roots.pem" \
		"--http_endpoint=127.0.0.1:$submit_port" \
		--checkpoint_interval=100ms --batch_max_age=50ms
	launch staticserve "$DIR/staticserve" -dir "$DIR/storage" -addr "127.0.0.1:$read_port"

	local deadline=$((t_ready + READY_TIMEOUT)) resp
	while :; do
		for name in $PROCS; do
			started "$name" || fail "$name exited"
		done
		# Ready when the read side serves a checkpoint of this origin and
		# the submission side answers.
		resp=$(http_get "$read_port" /checkpoint || true)
		case "$resp" in
		"HTTP/1."?" 200"*"$origin"*)
			resp=$(http_get "$submit_port" "/$LOG_PREFIX/ct/v1/get-roots" || true)
			case "$resp" in "HTTP/1."?" 200"*'"certificates"'*) break ;; esac
			;;
		esac
		[ $SECONDS -lt $deadline ] || fail "the log did not answer within ${READY_TIMEOUT} s"
		sleep 0.1
	done

	cat >"$DIR/env.tmp" <<-ENV
		CT_SUBMISSION_URL=http://127.0.0.1:$submit_port/$LOG_PREFIX
		CT_MONITORING_URL=http://127.0.0.1:$read_port
		CT_ORIGIN=$origin
		CT_KEY=$ct_key
	ENV
	mv "$DIR/env.tmp" "$DIR/env"
	say "ready in $((SECONDS - t0)) s (servers up in $((SECONDS - t_ready)) s)"
	cat "$DIR/env"
}

cmd_stop() {
	[ -d "$DIR" ] || return 0
	stop_procs
	rm -f "$DIR/env"
	[ "${1:-}" = quiet ] || say "stopped $DIR"
}

[ $# -ge 2 ] || usage
DIR=$2
case "$1" in
start)
	[ $# -eq 3 ] || usage
	roots=$3
	case "$roots" in /*) ;; *) roots="$PWD/$roots" ;; esac
	cmd_start "$roots"
	;;
stop)
	[ $# -eq 2 ] || usage
	[ -d "$DIR" ] && DIR=$(cd "$DIR" && pwd -P)
	cmd_stop
	;;
*) usage ;;
esac

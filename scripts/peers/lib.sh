# shellcheck shell=bash
# lib.sh holds what rfc6962.sh and static.sh share: messages, apt and
# `go install` of missing tools, free ports, launching servers with pid files,
# checking and stopping them, readiness probes and the start/stop command line.
# It is sourced, never run; sourcing it only defines functions and sets BIN,
# READY_TIMEOUT and PICKED (below), so it runs nothing.
#
# The sourcing script sets, before calling anything here:
#   PROG          its name, the prefix of every message ("static.sh")
#   PROCS         the names of its servers, in the order to stop them; each
#                 runs with DIR/NAME.pid and DIR/NAME.log
#   STOP_GRACE    seconds between SIGTERM and SIGKILL in stop_procs
#   PHYSICAL_DIR  1 to resolve symlinks in DIR (pwd -P), 0 to keep them (pwd)
# and defines:
#   owned PID     whether PID runs one of its binaries (guards against pid reuse)
#   ensure_tools, ensure_binaries   install what the servers need when absent
#   start_log ROOTS_PEM T0   launch the servers in DIR and publish DIR/env
#   cmd_stop [quiet]         stop what a start started (and say so unless quiet)
# and may define:
#   on_fail       cleanup that fail runs after stopping the servers
#
# DIR is the run's directory: peers_main sets it, and makes it absolute (see
# abs_dir) before stop; cmd_start does so before anything else.

# BIN is where the peers' binaries live, built there when absent.
BIN=${CTWATCHTEST_PEERS_BIN:-$HOME/.cache/ctwatch-peers/bin}
# READY_TIMEOUT is how many seconds a start waits for the log to answer.
# shellcheck disable=SC2034 # read by the sourcing scripts
READY_TIMEOUT=${CTWATCHTEST_PEERS_TIMEOUT:-90}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

say() {
	echo "$PROG: $*" >&2
}

usage() {
	echo "usage: $0 start DIR ROOTS_PEM | stop DIR" >&2
	exit 2
}

apt_install() {
	if [ "$(id -u)" -ne 0 ]; then
		die "need root to install $* (apt-get)"
	fi
	say "installing $* with apt-get"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# require_tools COMMAND=PACKAGE... dies unless go is on PATH, then installs in
# one apt-get run the package of each COMMAND that is not on PATH.
require_tools() {
	command -v go >/dev/null || die "go is not on PATH"
	local missing=() pair
	for pair in "$@"; do
		command -v "${pair%%=*}" >/dev/null || missing+=("${pair#*=}")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		apt_install "${missing[@]}"
	fi
}

# go_install NAME PACKAGE@VERSION... installs the packages into $BIN, dying
# with "go install of NAME failed" when that fails. It runs from an empty
# directory, outside any module, so the project's go.mod plays no part.
go_install() {
	local name=$1 tmp
	shift
	mkdir -p "$BIN"
	tmp=$(mktemp -d)
	(cd "$tmp" && GOBIN="$BIN" go install "$@") || {
		rm -rf "$tmp"
		die "go install of $name failed"
	}
	rm -rf "$tmp"
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
	# Stay below the kernel's ephemeral range: outgoing connections (to
	# PostgreSQL, between the servers) take their local ports from there and
	# could grab a port between our probe and the server's bind.
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

# launch [-C WORKDIR] NAME CMD... starts CMD in the background, in WORKDIR
# (default: the script's working directory), with its output in DIR/NAME.log
# and its pid in DIR/NAME.pid.
launch() {
	local workdir=""
	if [ "$1" = -C ]; then
		workdir=$2
		shift 2
	fi
	local name=$1
	shift
	if [ -n "$workdir" ]; then
		(cd "$workdir" && exec "$@") </dev/null >"$DIR/$name.log" 2>&1 &
	else
		"$@" </dev/null >"$DIR/$name.log" 2>&1 &
	fi
	echo $! >"$DIR/$name.pid"
}

# pid_running reports whether pid $1 exists and is not a zombie (our servers
# outlive the script, so init reaps them, whenever it gets to it).
pid_running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# started reports whether the process launched as $1 by this run is still
# there. (Right after launch the child may not have exec'd its binary yet, so
# this does not look at what the pid runs.)
started() {
	local f=$DIR/$1.pid pid
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -n "$pid" ] && pid_running "$pid"
}

# alive reports whether the pid recorded for $1 by an earlier run still runs
# one of our binaries (the script's owned).
alive() {
	started "$1" && owned "$(cat "$DIR/$1.pid")"
}

# already_running reports whether every server in PROCS still runs from an
# earlier start that got as far as writing DIR/env; if so it says so and
# prints DIR/env, which is all a start on a running DIR does.
already_running() {
	local name
	for name in $PROCS; do
		alive "$name" || return 1
	done
	[ -f "$DIR/env" ] || return 1
	say "already running in $DIR"
	cat "$DIR/env"
}

show_logs() {
	local f
	for f in "$DIR"/*.log; do
		[ -f "$f" ] || continue
		echo "----- tail of $f" >&2
		tail -n 25 "$f" >&2
	done
}

# fail MESSAGE ends a failed start: it prints MESSAGE and the logs' tails,
# stops what this run launched, runs the script's on_fail if any, exits 1.
fail() {
	say "$*"
	show_logs
	stop_procs mine
	if declare -F on_fail >/dev/null; then
		on_fail
	fi
	exit 1
}

# await_ready DEADLINE INTERVAL MESSAGE PROBE [ARG...] runs PROBE ARG...
# every INTERVAL seconds until it succeeds. It ends the start with fail as soon
# as a server launched so far (one with DIR/NAME.pid) has exited ("NAME
# exited"), or with MESSAGE once a probe fails at or after SECONDS DEADLINE.
await_ready() {
	local deadline=$1 interval=$2 message=$3 name
	shift 3
	while :; do
		for name in $PROCS; do
			[ -f "$DIR/$name.pid" ] || continue
			started "$name" || fail "$name exited"
		done
		if "$@"; then
			return
		fi
		[ $SECONDS -lt "$deadline" ] || fail "$message"
		sleep "$interval"
	done
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

# stop_procs stops the servers recorded in DIR: SIGTERM to all at once, then
# SIGKILL to whatever still runs after STOP_GRACE seconds. With "mine" it
# trusts the pids (this run launched them); otherwise it checks that each pid
# still runs our binary, so a pid reused since an old run is never killed.
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
	deadline=$((SECONDS + STOP_GRACE))
	for pid in "${pids[@]}"; do
		while pid_running "$pid" && [ $SECONDS -lt $deadline ]; do
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	# Return only once they are gone, so their ports, files and database
	# sessions are free.
	deadline=$((SECONDS + 10))
	for pid in "${pids[@]}"; do
		while pid_running "$pid" && [ $SECONDS -lt $deadline ]; do
			sleep 0.05
		done
	done
}

# new_log_key writes a fresh ECDSA P-256 private key, the log's signing key,
# to DIR/key.pem (openssl's messages go to DIR/openssl.log).
new_log_key() {
	openssl ecparam -name prime256v1 -genkey -noout -out "$DIR/key.pem" 2>"$DIR/openssl.log" ||
		fail "openssl ecparam failed"
}

# log_public_key VAR sets VAR to the public key of DIR/key.pem as base64 DER
# SubjectPublicKeyInfo, the form CT_KEY takes.
log_public_key() {
	local _log_public_key
	_log_public_key=$(openssl pkey -in "$DIR/key.pem" -pubout -outform DER 2>>"$DIR/openssl.log" | base64 -w0) ||
		fail "openssl pkey failed"
	printf -v "$1" '%s' "$_log_public_key"
}

# publish_env T0 T_READY writes its standard input to DIR/env (atomically, so
# a reader never sees half of it), reports the time since T0 (the start) and
# T_READY (the servers' launch) and prints DIR/env.
publish_env() {
	cat >"$DIR/env.tmp"
	mv "$DIR/env.tmp" "$DIR/env"
	say "ready in $((SECONDS - $1)) s (servers up in $((SECONDS - $2)) s)"
	cat "$DIR/env"
}

# abs_dir PATH prints the absolute path of the existing directory PATH,
# resolving symlinks when PHYSICAL_DIR is 1.
abs_dir() {
	if [ "$PHYSICAL_DIR" = 1 ]; then
		(cd "$1" && pwd -P)
	else
		(cd "$1" && pwd)
	fi
}

# cmd_start ROOTS_PEM is the start command: a no-op printing DIR/env when the
# log in DIR is up, otherwise it stops any leftovers, makes sure the tools and
# binaries are there and runs start_log.
cmd_start() {
	local roots=$1 t0=$SECONDS
	[ -f "$roots" ] || die "roots file $roots not found"
	mkdir -p "$DIR"
	DIR=$(abs_dir "$DIR")

	if already_running; then
		return
	fi
	cmd_stop quiet

	ensure_tools
	ensure_binaries
	start_log "$roots" "$t0"
}

# peers_main ARGS... runs the command line "start DIR ROOTS_PEM" or
# "stop DIR": it sets DIR and calls cmd_start with ROOTS_PEM made absolute,
# or cmd_stop with DIR made absolute when it exists.
peers_main() {
	[ $# -ge 2 ] || usage
	DIR=$2
	case "$1" in
	start)
		[ $# -eq 3 ] || usage
		local roots=$3
		case "$roots" in /*) ;; *) roots="$PWD/$roots" ;; esac
		cmd_start "$roots"
		;;
	stop)
		[ $# -eq 2 ] || usage
		if [ -d "$DIR" ]; then
			DIR=$(abs_dir "$DIR")
		fi
		cmd_stop
		;;
	*) usage ;;
	esac
}

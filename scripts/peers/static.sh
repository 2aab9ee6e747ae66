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

PROG=static.sh
PROCS="staticserve posix"
STOP_GRACE=10
# DIR physical, because owned() compares DIR/staticserve with /proc/PID/exe.
PHYSICAL_DIR=1
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODULE_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Canonical, because owned() compares it with /proc/PID/exe.
BIN=$(realpath -m "$BIN")

ensure_tools() {
	require_tools openssl=openssl
}

# ensure_binaries builds TesseraCT's posix and fsck into $BIN when absent.
ensure_binaries() {
	local need=()
	[ -x "$BIN/posix" ] || need+=("github.com/transparency-dev/tesseract/cmd/tesseract/posix@$TESSERACT_VERSION")
	[ -x "$BIN/fsck" ] || need+=("github.com/transparency-dev/tesseract/cmd/fsck@$TESSERACT_VERSION")
	[ ${#need[@]} -gt 0 ] || return 0
	local t0=$SECONDS
	say "building ${need[*]} (takes a minute the first time)"
	go_install tesseract "${need[@]}"
	say "built binaries in $((SECONDS - t0)) s"
}

# build_staticserve builds this checkout's file server into DIR.
build_staticserve() {
	(cd "$MODULE_ROOT" && go build -o "$DIR/staticserve" ./scripts/peers/staticserve) >"$DIR/build.log" 2>&1 || {
		cat "$DIR/build.log" >&2
		die "go build ./scripts/peers/staticserve failed"
	}
}

# owned reports whether pid $1 runs one of our binaries (guards against pid
# reuse after a reboot or a long pause).
owned() {
	local exe
	exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
	case "$exe" in "$BIN/posix" | "$DIR/staticserve" | "$DIR/staticserve (deleted)") return 0 ;; esac
	return 1
}

# log_answers READ_PORT SUBMIT_PORT ORIGIN reports whether the log is ready:
# the read side on READ_PORT serves a checkpoint of ORIGIN and the submission
# side on SUBMIT_PORT answers get-roots.
log_answers() {
	local resp
	resp=$(http_get "$1" /checkpoint || true)
	case "$resp" in "HTTP/1."?" 200"*"$3"*) ;; *) return 1 ;; esac
	resp=$(http_get "$2" "/$LOG_PREFIX/ct/v1/get-roots" || true)
	case "$resp" in "HTTP/1."?" 200"*'"certificates"'*) return 0 ;; esac
	return 1
}

# start_log ROOTS_PEM T0 starts the log in DIR, which holds nothing running,
# and publishes DIR/env once it answers; T0 is when the start began.
start_log() {
	local roots=$1 t0=$2
	build_staticserve
	cp "$roots" "$DIR/roots.pem"
	# Every start is a new, empty log.
	rm -rf "$DIR/storage"
	mkdir -p "$DIR/storage"

	rm -f "$DIR/key.pem"
	new_log_key
	local ct_key
	log_public_key ct_key
	[ -n "$ct_key" ] || fail "openssl pkey printed no key"

	# The readiness budget starts now: building the binaries does not eat it.
	local t_ready=$SECONDS submit_port read_port
	local origin="127.0.0.1/$LOG_PREFIX"
	free_port submit_port
	free_port read_port

	# TesseraCT exports metrics over OTLP to localhost:4318 and logs an
	# error each time nobody is there; once an hour is enough noise.
	launch -C "$DIR" posix env OTEL_METRIC_EXPORT_INTERVAL=3600000 "$BIN/posix" \
		"--private_key=$DIR/key.pem" "--origin=$origin" "--path_prefix=/$LOG_PREFIX" \
		"--storage_dir=$DIR/storage" "--roots_pem_file=$DIR/roots.pem" \
		"--http_endpoint=127.0.0.1:$submit_port" \
		--checkpoint_interval=100ms --batch_max_age=50ms
	launch -C "$DIR" staticserve "$DIR/staticserve" -dir "$DIR/storage" -addr "127.0.0.1:$read_port"

	await_ready $((t_ready + READY_TIMEOUT)) 0.1 "the log did not answer within ${READY_TIMEOUT} s" \
		log_answers "$read_port" "$submit_port" "$origin"

	publish_env "$t0" "$t_ready" <<-ENV
		CT_SUBMISSION_URL=http://127.0.0.1:$submit_port/$LOG_PREFIX
		CT_MONITORING_URL=http://127.0.0.1:$read_port
		CT_ORIGIN=$origin
		CT_KEY=$ct_key
	ENV
}

cmd_stop() {
	[ -d "$DIR" ] || return 0
	stop_procs
	rm -f "$DIR/env"
	[ "${1:-}" = quiet ] || say "stopped $DIR"
}

peers_main "$@"

#!/usr/bin/env bash
# rfc6962.sh starts and stops a real RFC 6962 CT log on 127.0.0.1 for tests:
# Trillian v1.7.3 (log server + signer) on the machine's PostgreSQL cluster,
# fronted by CTFE (certificate-transparency-go v1.4.0 ct_server).
#
#   rfc6962.sh start DIR ROOTS_PEM   # writes DIR/env (CT_URL, CT_KEY, ...)
#   rfc6962.sh stop DIR              # stops what start started, drops its DB
#
# Both commands are idempotent: start on a DIR whose log is up is a no-op,
# start on a DIR with leftovers stops them first, stop on a stopped DIR does
# nothing. Every run of start gets a fresh database, so runs are independent.
# The database is named after DIR, so several DIRs can run side by side.
#
# Works as root on a fresh Debian 12 machine with Go installed: PostgreSQL and
# openssl come from apt when absent, the binaries are built once with
# `go install` into ${CTWATCHTEST_PEERS_BIN:-$HOME/.cache/ctwatch-peers/bin}.
# Everything listens on 127.0.0.1 only, on ports picked free at start.
#
# Environment:
#   CTWATCHTEST_PEERS_BIN      where the binaries live (built there when absent)
#   CTWATCHTEST_PEERS_TIMEOUT  seconds to wait for get-sth to answer (default 90)
#   CTWATCHTEST_PEERS_DB       database name (default: trillian_<hash of DIR>)
#
# See ../../docs or PEERS.md in the project's shared notes for background.
set -euo pipefail

TRILLIAN_VERSION=v1.7.3
CTGO_VERSION=v1.4.0
PG_ROLE=trillian
PG_PASSWORD=trillian
CTFE_KEY_PASSWORD=changeme
LOG_PREFIX=testlog

BIN=${CTWATCHTEST_PEERS_BIN:-$HOME/.cache/ctwatch-peers/bin}
READY_TIMEOUT=${CTWATCHTEST_PEERS_TIMEOUT:-90}

die() {
	echo "rfc6962.sh: $*" >&2
	exit 1
}

say() {
	echo "rfc6962.sh: $*" >&2
}

usage() {
	echo "usage: $0 start DIR ROOTS_PEM | stop DIR" >&2
	exit 2
}

# as_postgres runs a command as the postgres OS user (peer authentication).
as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- env PGOPTIONS="-c client_min_messages=warning" "$@")
	else
		(cd / && sudo -n -u postgres -- env PGOPTIONS="-c client_min_messages=warning" "$@")
	fi
}

apt_install() {
	if [ "$(id -u)" -ne 0 ]; then
		die "need root to install $* (apt-get)"
	fi
	say "installing $* with apt-get"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_tools() {
	command -v go >/dev/null || die "go is not on PATH"
	local missing=()
	command -v openssl >/dev/null || missing+=(openssl)
	command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
	if [ ${#missing[@]} -gt 0 ]; then
		apt_install "${missing[@]}"
	fi
	if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
		# Installed without a cluster (or it was dropped): make one.
		local ver
		ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -n1)
		[ -n "$ver" ] || die "PostgreSQL server binaries not found in /usr/lib/postgresql"
		say "creating PostgreSQL cluster $ver/main"
		pg_createcluster "$ver" main >/dev/null || die "pg_createcluster $ver main failed"
	fi
}

# ensure_binaries builds the peers' binaries into $BIN when absent.
ensure_binaries() {
	local need_trillian=() need_ctgo=() b
	for b in trillian_log_server trillian_log_signer createtree; do
		[ -x "$BIN/$b" ] || need_trillian+=("github.com/google/trillian/cmd/$b@$TRILLIAN_VERSION")
	done
	[ -x "$BIN/ct_server" ] || need_ctgo+=("github.com/google/certificate-transparency-go/trillian/ctfe/ct_server@$CTGO_VERSION")
	[ -x "$BIN/ctclient" ] || need_ctgo+=("github.com/google/certificate-transparency-go/client/ctclient@$CTGO_VERSION")
	if [ ${#need_trillian[@]} -eq 0 ] && [ ${#need_ctgo[@]} -eq 0 ]; then
		return
	fi
	mkdir -p "$BIN"
	local t0=$SECONDS tmp
	tmp=$(mktemp -d)
	# Outside any module, so the project's go.mod plays no part.
	if [ ${#need_trillian[@]} -gt 0 ]; then
		say "building ${need_trillian[*]} (takes minutes the first time)"
		(cd "$tmp" && GOBIN="$BIN" go install "${need_trillian[@]}") || {
			rm -rf "$tmp"
			die "go install of trillian failed"
		}
	fi
	if [ ${#need_ctgo[@]} -gt 0 ]; then
		say "building ${need_ctgo[*]}"
		(cd "$tmp" && GOBIN="$BIN" go install "${need_ctgo[@]}") || {
			rm -rf "$tmp"
			die "go install of certificate-transparency-go failed"
		}
	fi
	rm -rf "$tmp"
	say "built binaries in $((SECONDS - t0)) s"
}

# schema_file prints the path of Trillian's PostgreSQL schema, downloading the
# module when the module cache lacks it.
schema_file() {
	local rel=storage/postgresql/schema/storage.sql dir
	dir="$(go env GOMODCACHE)/github.com/google/trillian@$TRILLIAN_VERSION"
	if [ ! -f "$dir/$rel" ]; then
		local tmp
		tmp=$(mktemp -d)
		dir=$(cd "$tmp" && go mod download -json "github.com/google/trillian@$TRILLIAN_VERSION" |
			sed -n 's/^[[:space:]]*"Dir":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')
		rm -rf "$tmp"
	fi
	[ -f "$dir/$rel" ] || die "trillian schema not found (looked in $dir)"
	echo "$dir/$rel"
}

# pg_cluster prints "VERSION NAME PORT" of the first PostgreSQL cluster.
pg_cluster() {
	local line
	line=$(pg_lsclusters -h | head -n1)
	[ -n "$line" ] || die "no PostgreSQL cluster (pg_lsclusters is empty)"
	echo "$line" | awk '{print $1, $2, $3}'
}

ensure_postgres() {
	local ver name port
	read -r ver name port < <(pg_cluster)
	if ! pg_ctlcluster "$ver" "$name" status >/dev/null 2>&1; then
		say "starting PostgreSQL $ver/$name"
		pg_ctlcluster "$ver" "$name" start || die "pg_ctlcluster $ver $name start failed"
	fi
	local deadline=$((SECONDS + 30))
	until pg_isready -q -h 127.0.0.1 -p "$port"; do
		[ $SECONDS -lt $deadline ] || die "PostgreSQL on 127.0.0.1:$port not ready after 30 s"
		sleep 0.2
	done
	PG_PORT=$port
}

# psql_admin runs the SQL on its standard input as the postgres superuser.
psql_admin() {
	as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres
}

# fresh_database (re)creates $DB owned by the trillian role, with the schema.
fresh_database() {
	local schema=$1
	psql_admin >/dev/null <<-SQL
		DO \$\$ BEGIN
		  CREATE ROLE $PG_ROLE LOGIN PASSWORD '$PG_PASSWORD';
		EXCEPTION WHEN duplicate_object THEN NULL;
		END \$\$;
		ALTER ROLE $PG_ROLE LOGIN PASSWORD '$PG_PASSWORD';
		DROP DATABASE IF EXISTS "$DB" WITH (FORCE);
		CREATE DATABASE "$DB" OWNER $PG_ROLE;
	SQL
	PGPASSWORD=$PG_PASSWORD PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" \
		-U "$PG_ROLE" -d "$DB" -f "$schema" >"$DIR/schema.log" 2>&1 ||
		{
			tail -n 20 "$DIR/schema.log" >&2
			die "loading $schema failed"
		}
}

drop_database() {
	local db=$1 ver name port
	command -v pg_lsclusters >/dev/null || return 0
	read -r ver name port < <(pg_cluster) || return 0
	pg_ctlcluster "$ver" "$name" status >/dev/null 2>&1 || return 0
	as_postgres psql -X -q -p "$port" -d postgres \
		-c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE);" >/dev/null 2>&1 || true
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

# launch NAME CMD... starts CMD in the background with its output in
# DIR/NAME.log and its pid in DIR/NAME.pid.
launch() {
	local name=$1
	shift
	"$@" </dev/null >"$DIR/$name.log" 2>&1 &
	echo $! >"$DIR/$name.pid"
}

# pid_running reports whether pid $1 exists and is not a zombie (our servers
# outlive this script, so init reaps them, whenever it gets to it).
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
# one of our binaries.
alive() {
	started "$1" && owned "$(cat "$DIR/$1.pid")"
}

# owned reports whether pid $1 runs one of our binaries (guards against pid
# reuse after a reboot or a long pause).
owned() {
	local exe
	exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
	case "$exe" in "$BIN"/* | */trillian_log_server | */trillian_log_signer | */ct_server) return 0 ;; esac
	return 1
}

PROCS="ct_server trillian_log_signer trillian_log_server"

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
	[ -n "${DB:-}" ] && drop_database "$DB"
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

# stop_procs stops the servers recorded in DIR: SIGTERM to all at once, then
# SIGKILL to whatever still runs after 5 s (their data is thrown away anyway;
# Trillian takes its time to shut down). With "mine" it trusts the pids
# (this run launched them); otherwise it checks that each pid still runs our
# binary, so a pid reused since an old run is never killed.
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
	deadline=$((SECONDS + 5))
	for pid in "${pids[@]}"; do
		while pid_running "$pid" && [ $SECONDS -lt $deadline ]; do
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	# Return only once they are gone, so their ports and DB sessions are free.
	deadline=$((SECONDS + 10))
	for pid in "${pids[@]}"; do
		while pid_running "$pid" && [ $SECONDS -lt $deadline ]; do
			sleep 0.05
		done
	done
}

db_name() {
	if [ -n "${CTWATCHTEST_PEERS_DB:-}" ]; then
		echo "$CTWATCHTEST_PEERS_DB"
	else
		echo "trillian_$(printf '%s' "$DIR" | sha256sum | cut -c1-12)"
	fi
}

cmd_start() {
	local roots=$1 t0=$SECONDS
	[ -f "$roots" ] || die "roots file $roots not found"
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd)

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
	local schema
	schema=$(schema_file)
	ensure_postgres
	say "PostgreSQL ready at $((SECONDS - t0)) s"
	DB=$(db_name)
	echo "$DB" >"$DIR/dbname"
	fresh_database "$schema"
	cp "$roots" "$DIR/roots.pem"

	# The log's signing key; CTFE's PEM loader insists on an encrypted copy.
	rm -f "$DIR/key.pem" "$DIR/key-enc.pem"
	openssl ecparam -name prime256v1 -genkey -noout -out "$DIR/key.pem" 2>"$DIR/openssl.log" ||
		fail "openssl ecparam failed"
	openssl ec -in "$DIR/key.pem" -aes128 -passout "pass:$CTFE_KEY_PASSWORD" \
		-out "$DIR/key-enc.pem" 2>>"$DIR/openssl.log" || fail "openssl ec failed"
	local ct_key
	ct_key=$(openssl pkey -in "$DIR/key.pem" -pubout -outform DER 2>>"$DIR/openssl.log" | base64 -w0) ||
		fail "openssl pkey failed"

	# The readiness budget starts now: building the binaries does not eat it.
	local t_ready=$SECONDS
	local pg_uri="postgresql:///$DB?host=127.0.0.1&port=$PG_PORT&user=$PG_ROLE&password=$PG_PASSWORD"
	local storage=(--storage_system=postgresql --quota_system=postgresql "--postgresql_uri=$pg_uri")
	local srv_rpc srv_http sig_rpc sig_http ct_port
	free_port srv_rpc
	free_port srv_http
	free_port sig_rpc
	free_port sig_http
	free_port ct_port

	launch trillian_log_server "$BIN/trillian_log_server" "${storage[@]}" \
		"--rpc_endpoint=127.0.0.1:$srv_rpc" "--http_endpoint=127.0.0.1:$srv_http"
	launch trillian_log_signer "$BIN/trillian_log_signer" "${storage[@]}" \
		--force_master --election_system=noop --sequencer_interval=100ms \
		"--rpc_endpoint=127.0.0.1:$sig_rpc" "--http_endpoint=127.0.0.1:$sig_http"

	local deadline=$((t_ready + READY_TIMEOUT)) tree_id=""
	while :; do
		started trillian_log_server || fail "trillian_log_server exited"
		started trillian_log_signer || fail "trillian_log_signer exited"
		if port_in_use "$srv_rpc" &&
			tree_id=$("$BIN/createtree" "--admin_server=127.0.0.1:$srv_rpc" --tree_type=LOG \
				--rpc_deadline=10s 2>>"$DIR/createtree.log") && [ -n "$tree_id" ]; then
			break
		fi
		[ $SECONDS -lt $deadline ] || fail "createtree did not succeed within ${READY_TIMEOUT} s"
		sleep 0.5
	done
	echo "$tree_id" >"$DIR/tree_id"

	cat >"$DIR/ctfe.cfg" <<-CFG
		config {
		  log_id: $tree_id
		  prefix: "$LOG_PREFIX"
		  roots_pem_file: "$DIR/roots.pem"
		  private_key: {
		    [type.googleapis.com/keyspb.PEMKeyFile] {
		      path: "$DIR/key-enc.pem"
		      password: "$CTFE_KEY_PASSWORD"
		    }
		  }
		}
	CFG
	launch ct_server "$BIN/ct_server" "--log_config=$DIR/ctfe.cfg" \
		"--log_rpc_server=127.0.0.1:$srv_rpc" "--http_endpoint=127.0.0.1:$ct_port"

	local resp
	while :; do
		for name in $PROCS; do
			started "$name" || fail "$name exited"
		done
		resp=$(http_get "$ct_port" "/$LOG_PREFIX/ct/v1/get-sth" || true)
		case "$resp" in
		"HTTP/1."?" 200"*'"tree_size"'*) break ;;
		esac
		[ $SECONDS -lt $deadline ] || fail "get-sth did not answer within ${READY_TIMEOUT} s"
		sleep 0.5
	done

	cat >"$DIR/env.tmp" <<-ENV
		CT_URL=http://127.0.0.1:$ct_port/$LOG_PREFIX
		CT_KEY=$ct_key
		CT_TREE_ID=$tree_id
		CT_DB=$DB
	ENV
	mv "$DIR/env.tmp" "$DIR/env"
	say "ready in $((SECONDS - t0)) s (servers up in $((SECONDS - t_ready)) s)"
	cat "$DIR/env"
}

cmd_stop() {
	[ -d "$DIR" ] || return 0
	stop_procs
	rm -f "$DIR/env"
	if [ -f "$DIR/dbname" ]; then
		drop_database "$(cat "$DIR/dbname")"
		rm -f "$DIR/dbname"
	fi
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
	[ -d "$DIR" ] && DIR=$(cd "$DIR" && pwd)
	cmd_stop
	;;
*) usage ;;
esac

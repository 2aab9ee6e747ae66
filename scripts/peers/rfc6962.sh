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

PROG=rfc6962.sh
PROCS="ct_server trillian_log_signer trillian_log_server"
# Trillian takes its time to shut down, and the data is thrown away anyway.
STOP_GRACE=5
PHYSICAL_DIR=0

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# as_postgres runs a command as the postgres OS user (peer authentication).
as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- env PGOPTIONS="-c client_min_messages=warning" "$@")
	else
		(cd / && sudo -n -u postgres -- env PGOPTIONS="-c client_min_messages=warning" "$@")
	fi
}

ensure_tools() {
	require_tools openssl=openssl pg_ctlcluster=postgresql
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
	local t0=$SECONDS
	if [ ${#need_trillian[@]} -gt 0 ]; then
		say "building ${need_trillian[*]} (takes minutes the first time)"
		go_install trillian "${need_trillian[@]}"
	fi
	if [ ${#need_ctgo[@]} -gt 0 ]; then
		say "building ${need_ctgo[*]}"
		go_install certificate-transparency-go "${need_ctgo[@]}"
	fi
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

# owned reports whether pid $1 runs one of our binaries (guards against pid
# reuse after a reboot or a long pause).
owned() {
	local exe
	exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
	case "$exe" in "$BIN"/* | */trillian_log_server | */trillian_log_signer | */ct_server) return 0 ;; esac
	return 1
}

# on_fail drops the database of a failed start.
on_fail() {
	if [ -n "${DB:-}" ]; then
		drop_database "$DB"
	fi
}

db_name() {
	if [ -n "${CTWATCHTEST_PEERS_DB:-}" ]; then
		echo "$CTWATCHTEST_PEERS_DB"
	else
		echo "trillian_$(printf '%s' "$DIR" | sha256sum | cut -c1-12)"
	fi
}

# create_tree VAR RPC_PORT reports whether createtree made a log tree on the
# Trillian log server at RPC_PORT, and sets VAR to the tree's id when it did.
create_tree() {
	local id
	port_in_use "$2" &&
		id=$("$BIN/createtree" "--admin_server=127.0.0.1:$2" --tree_type=LOG \
			--rpc_deadline=10s 2>>"$DIR/createtree.log") && [ -n "$id" ] &&
		printf -v "$1" '%s' "$id"
}

# sth_answers PORT reports whether CTFE on PORT serves get-sth.
sth_answers() {
	local resp
	resp=$(http_get "$1" "/$LOG_PREFIX/ct/v1/get-sth" || true)
	case "$resp" in
	"HTTP/1."?" 200"*'"tree_size"'*) return 0 ;;
	esac
	return 1
}

# start_log ROOTS_PEM T0 starts the log in DIR, which holds nothing running,
# and publishes DIR/env once it answers; T0 is when the start began.
start_log() {
	local roots=$1 t0=$2
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
	new_log_key
	openssl ec -in "$DIR/key.pem" -aes128 -passout "pass:$CTFE_KEY_PASSWORD" \
		-out "$DIR/key-enc.pem" 2>>"$DIR/openssl.log" || fail "openssl ec failed"
	local ct_key
	log_public_key ct_key

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
	await_ready "$deadline" 0.5 "createtree did not succeed within ${READY_TIMEOUT} s" \
		create_tree tree_id "$srv_rpc"
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

	await_ready "$deadline" 0.5 "get-sth did not answer within ${READY_TIMEOUT} s" \
		sth_answers "$ct_port"

	publish_env "$t0" "$t_ready" <<-ENV
		CT_URL=http://127.0.0.1:$ct_port/$LOG_PREFIX
		CT_KEY=$ct_key
		CT_TREE_ID=$tree_id
		CT_DB=$DB
	ENV
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

peers_main "$@"

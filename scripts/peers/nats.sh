#!/usr/bin/env bash
# nats.sh makes sure a nats-server binary is there for the reliability suite
# (e2e/reliability_test.go), which starts, kills and restarts the servers of
# a three-node cluster itself: a test has to SIGKILL one node and start it
# again on the same store directory at a moment of its choosing, which a
# start/stop script cannot time.
#
#   nats.sh bin    # builds nats-server when absent, prints its path
#
# The binary is built once with `go install` from the Go module proxy into
# ${CTWATCHTEST_PEERS_BIN:-$HOME/.cache/ctwatch-peers/bin} (about a minute
# from an empty build cache), next to the other peers, and reused after.
# The version is the one go.mod pins for the embedded server, so the cluster
# runs the same server code ctwatch embeds.
#
# Environment:
#   CTWATCHTEST_PEERS_BIN  where the binary lives (built there when absent)
set -euo pipefail

NATS_SERVER_VERSION=v2.15.2

# shellcheck disable=SC2034 # read by lib.sh (die, say)
PROG=nats.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

nats_usage() {
	echo "usage: $0 bin" >&2
	exit 2
}

case "${1:-}" in
bin)
	[ $# -eq 1 ] || nats_usage
	command -v go >/dev/null || die "go is not on PATH"
	if [ ! -x "$BIN/nats-server" ]; then
		t0=$SECONDS
		say "building nats-server $NATS_SERVER_VERSION (takes a minute the first time)"
		go_install nats-server "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
		say "built nats-server in $((SECONDS - t0)) s"
	fi
	realpath "$BIN/nats-server"
	;;
*) nats_usage ;;
esac

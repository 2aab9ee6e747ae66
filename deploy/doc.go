// Package deploy holds ctwatch's deployment files rather than code: a
// hardened systemd unit (systemd/), a container image (Dockerfile and
// container/), a compose file with a three-node NATS cluster (compose/),
// Kubernetes manifests (kubernetes/), a Grafana dashboard (grafana/) and
// Prometheus alert rules (prometheus/).
//
// The package exists so that its tests run with every `go test ./...`:
// they parse each file, check the structure that matters (hardening keys,
// non-root containers, probes on the right paths, NATS routes, every
// metric a query names being one ctwatch exports) and load each example
// configuration with the same loader the daemon uses, so that a change to
// the configuration schema cannot leave these files behind unnoticed.
// Running the files for real (a container engine, a cluster) is outside
// what those tests can do; scripts/test adds the checks this machine
// allows (systemd-analyze, and docker compose or kubectl when present).
package deploy

// Package e2e holds ctwatch's end-to-end tests: they build the ctwatch binary,
// run it as a user would (a subprocess with a config file) against real CT
// logs on 127.0.0.1, and judge it only by its external contract: the JSONL
// hit lines, the exit codes, the output of `ctwatch check --json`.
//
// The tests sit behind the build tag e2e because they start real servers
// (Trillian, CTFE and PostgreSQL through scripts/peers/rfc6962.sh; TesseraCT
// and a static file server through scripts/peers/static.sh) and take tens of
// seconds, so `go test ./...` skips them. Run them with
//
//	go test -tags e2e ./e2e/
//
// Set CTWATCHTEST_E2E_SKIP_RFC6962=1 to skip the test that needs the real RFC
// 6962 log (for a machine without root or apt); every other failure to start
// a peer fails the test.
//
// The reliability suite (a three-node nats-server cluster, three ctwatch
// processes, both real logs with 20,000 entries, SIGKILLs and a NATS node
// restart; docs/reliability.md) has the extra tag reliability:
//
//	go test -tags e2e,reliability -run TestReliability ./e2e/
package e2e

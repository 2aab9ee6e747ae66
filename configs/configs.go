// Package configs holds the data ctwatch ships with: the example
// configuration, the default rules and the bundled CT log list, each with a
// note of where it came from (the *.SOURCE.md files beside them).
//
// It contains no logic. Data that the program needs at run time is embedded
// here so that a single binary works without these files on disk.
package configs

import _ "embed"

// logList is the bundled Chrome v3 "all logs" list of 2025-05-05; see
// log_list.SOURCE.md. A string, so the embedded bytes cannot be changed.
//
//go:embed log_list.json
var logList string

// LogList returns the bundled CT log list (Chrome v3 JSON schema).
//
// It is a fallback for when the live list cannot be fetched, and it is old:
// callers should say so when they use it. Each call returns a fresh copy
// that the caller may modify; it is safe for concurrent use.
func LogList() []byte {
	return []byte(logList)
}

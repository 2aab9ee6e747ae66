// Package configs holds the data ctwatch ships with: the example
// configuration, the default rules, the bundled CT log list, the built-in CA
// feeds and the CA owner issuer sets, each with a note of where it came from
// (the *.SOURCE.md and SOURCE.md files beside them).
//
// It contains no logic. Data that the program needs at run time is embedded
// here so that a single binary works without these files on disk.
package configs

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

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

// feedFiles holds the built-in feeds: feeds/<name>.yaml, the index, and
// feeds/<name>/*.pem, the certificates. An embed.FS cannot be modified.
//
//go:embed feeds/*.yaml feeds/*/*.pem
var feedFiles embed.FS

// issuerFiles holds the CA owner issuer sets, issuers/<owner>.yaml.
//
//go:embed issuers/*.yaml
var issuerFiles embed.FS

// builtinRules is rules/builtin.yaml: the rules that run unless the
// configuration turns them off.
//
//go:embed rules/builtin.yaml
var builtinRules string

// BuiltinRules returns the built-in rule file (a copy), in the rule-file
// format of package rules.
func BuiltinRules() []byte {
	return []byte(builtinRules)
}

// Feed returns the YAML index of the built-in feed name (such as
// "interception-cas"), and false when there is no such feed.
//
// The index is a mapping with keys feed (the name), description and
// certificates, a list of mappings with keys file (the PEM file, for
// FeedCert), subject (RFC 4514 as Go's pkix.Name.String prints it),
// cert_sha256 and spki_sha256 (lower-case hex SHA-256 of the certificate DER
// and of its SubjectPublicKeyInfo DER), incident (one line: year, country,
// what happened) and source (where the certificate came from); see
// feeds/SOURCE.md. Each call returns a fresh copy that the caller may
// modify; it is safe for concurrent use.
func Feed(name string) ([]byte, bool) {
	if !isPlainName(name) {
		return nil, false
	}
	return readFile(feedFiles, "feeds/"+name+".yaml")
}

// FeedCert returns the PEM certificate file of the built-in feed name, as
// listed in the file field of the feed's index, and false when the feed or
// the file does not exist. Names with path separators are refused, so it
// reads nothing but a feed's certificates. Each call returns a fresh copy;
// it is safe for concurrent use.
func FeedCert(name, file string) ([]byte, bool) {
	if !isPlainName(name) || !isPlainName(file) || !strings.HasSuffix(file, ".pem") {
		return nil, false
	}
	return readFile(feedFiles, "feeds/"+name+"/"+file)
}

// FeedNames returns the names of the built-in feeds, sorted, for Feed and
// FeedCert. It returns a new slice on every call and is safe for
// concurrent use.
func FeedNames() []string {
	return yamlNames(feedFiles, "feeds")
}

// IssuerSet returns the YAML issuer set of a CA owner (such as
// "lets-encrypt", "digicert" or "google-trust-services"), and false when
// there is no such owner.
//
// The set is a mapping with keys owner (the id), name (the display name)
// and issuers, a list of the owner's issuing CA certificates as mappings
// with keys subject (RFC 4514 as Go's pkix.Name.String prints it),
// cert_sha256 and spki_sha256 (lower-case hex SHA-256 of the certificate DER
// and of its SubjectPublicKeyInfo DER; match on the SPKI to catch
// cross-signed copies of a key) and source (where the certificate came
// from); see issuers/SOURCE.md. Each call returns a fresh copy that the
// caller may modify; it is safe for concurrent use.
func IssuerSet(owner string) ([]byte, bool) {
	if !isPlainName(owner) {
		return nil, false
	}
	return readFile(issuerFiles, "issuers/"+owner+".yaml")
}

// IssuerOwners returns the owner ids that IssuerSet knows, sorted. It
// returns a new slice on every call and is safe for concurrent use.
func IssuerOwners() []string {
	return yamlNames(issuerFiles, "issuers")
}

// isPlainName reports whether name can be one path element: not empty, no
// separators, not "." or "..".
func isPlainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`)
}

// readFile reads one embedded file; embed.FS.ReadFile returns a copy.
func readFile(fsys embed.FS, name string) ([]byte, bool) {
	data, err := fsys.ReadFile(name)
	if err != nil {
		return nil, false
	}
	return data, true
}

// yamlNames lists the *.yaml files of dir without the extension, sorted
// (fs.ReadDir sorts by name).
func yamlNames(fsys embed.FS, dir string) []string {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil // cannot happen: dir is embedded
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && path.Ext(n) == ".yaml" {
			names = append(names, strings.TrimSuffix(n, ".yaml"))
		}
	}
	return names
}

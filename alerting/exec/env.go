package exec

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

// Bounds on the environment. Linux refuses to start a program when one
// variable exceeds 128 KiB or all of them a quarter of the stack limit
// (E2BIG), and a certificate can carry thousands of names: every value is
// capped so that a run never fails for the size of its input.
const (
	// maxValue caps one variable's value, in bytes.
	maxValue = 8 << 10
	// maxNames caps a comma-separated list of DNS names, in bytes; the
	// names that do not fit are counted in CTWATCH_DNS_NAMES_MORE.
	maxNames = 32 << 10
	// maxSummaryName caps the DNS name quoted in a summary, in bytes.
	maxSummaryName = 200
)

// prefix starts every variable of ctwatch's own.
const prefix = "CTWATCH_"

// certspotterName reports whether k is one of the variables certspotter's
// hook scripts read (certspotter-script(8)). Those with a ctwatch
// equivalent are set; all of them are removed from the inherited
// environment, so a script never sees a stale value for a field this
// message lacks.
func certspotterName(k string) bool {
	switch k {
	case "EVENT", "SUMMARY", "WATCH_ITEM",
		"LOG_URI", "ENTRY_INDEX",
		"TBS_SHA256", "CERT_SHA256", "PUBKEY_SHA256",
		"CERT_FILENAME", "JSON_FILENAME", "TEXT_FILENAME", "ENTRY_FILENAME",
		"NOT_BEFORE", "NOT_BEFORE_UNIXTIME", "NOT_BEFORE_RFC3339",
		"NOT_AFTER", "NOT_AFTER_UNIXTIME", "NOT_AFTER_RFC3339",
		"VALIDITY_PARSE_ERROR",
		"SUBJECT_DN", "SUBJECT_PARSE_ERROR",
		"ISSUER_DN", "ISSUER_PARSE_ERROR",
		"SERIAL", "SERIAL_PARSE_ERROR",
		"LEAF_HASH", "PARSE_ERROR",
		"DNS_NAMES", "IP_ADDRESSES":
		return true
	}
	return false
}

// owned reports whether ctwatch controls the variable k.
func owned(k string) bool {
	return strings.HasPrefix(k, prefix) || certspotterName(k)
}

// environ builds the program's environment: base without the variables
// ctwatch owns, then extra, then vars.
func environ(base, extra, vars []string) []string {
	out := make([]string, 0, len(base)+len(extra)+len(vars))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !owned(k) {
			out = append(out, kv)
		}
	}
	out = append(out, extra...)
	return append(out, vars...)
}

// env collects "KEY=value" entries.
type env []string

// set adds k with v made safe: no NUL (execve cannot pass one) and at most
// maxValue bytes, cut on a character boundary.
func (e *env) set(k, v string) {
	*e = append(*e, k+"="+capBytes(strings.ReplaceAll(v, "\x00", ""), maxValue))
}

// names sets key to names joined by commas, as many as fit in maxNames
// bytes, and returns how many were left out.
func (e *env) names(key string, names []string) int {
	var b strings.Builder
	left := 0
	for i, n := range names {
		n = strings.ReplaceAll(n, "\x00", "")
		if b.Len()+len(n)+1 > maxNames {
			left = len(names) - i
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
	}
	// Not set: its cap would cut the list in the middle of a name.
	*e = append(*e, key+"="+b.String())
	return left
}

// capBytes cuts s to at most n bytes without splitting a UTF-8 sequence.
func capBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// describe returns the variables describing m, or nil when m holds
// nothing.
func describe(m *alerting.Message) []string {
	var e env
	var summary string
	switch {
	case m.Hit != nil:
		summary = describeHit(&e, m.Hit)
	case m.Event != nil:
		summary = describeEvent(&e, m.Event)
	case m.Digest != nil:
		summary = describeDigest(&e, m.Digest)
	default:
		return nil
	}
	if m.Test {
		summary = "[TEST] " + summary
		e.set(prefix+"TEST", "1")
	}
	e.set(prefix+"KIND", m.Kind())
	e.set(prefix+"ID", m.ID())
	e.set(prefix+"SUMMARY", summary)
	e.set("SUMMARY", summary)
	return e
}

// describeHit sets the variables of a hit and returns its summary,
// "HIGH our-names: www.example.com (+3 more)".
func describeHit(e *env, h *event.Hit) string {
	e.set(prefix+"RULE", h.Rule)
	e.set(prefix+"SEVERITY", string(h.Severity))
	e.set(prefix+"REASON", h.Reason)
	e.set(prefix+"TAGS", strings.Join(h.Tags, ","))
	if left := e.names(prefix+"DNS_NAMES", h.Cert.DNSNames); left > 0 {
		e.set(prefix+"DNS_NAMES_MORE", strconv.Itoa(left))
	}
	e.set(prefix+"CERT_SHA256", h.Cert.SHA256)
	e.set(prefix+"TBS_SHA256", h.Cert.TBSSHA256)
	if h.Cert.Precert {
		e.set(prefix+"PRECERT", "1")
	}
	e.set(prefix+"ISSUER", h.Cert.Issuer)
	e.set(prefix+"SUBJECT", h.Cert.Subject)
	e.set(prefix+"NOT_BEFORE", rfc3339(h.Cert.NotBefore))
	e.set(prefix+"NOT_AFTER", rfc3339(h.Cert.NotAfter))
	e.set(prefix+"CRTSH_URL", alerting.CrtshURL(h.Cert.SHA256))
	if h.Log != nil {
		e.set(prefix+"LOG_NAME", h.Log.Name)
		e.set(prefix+"LOG_URL", h.Log.URL)
		e.set(prefix+"LOG_INDEX", strconv.FormatUint(h.Log.Index, 10))
		e.set("LOG_URI", h.Log.URL)
		e.set("ENTRY_INDEX", strconv.FormatUint(h.Log.Index, 10))
	}

	// certspotter's discovered_cert.
	e.set("EVENT", "discovered_cert")
	e.set("CERT_SHA256", h.Cert.SHA256)
	e.set("TBS_SHA256", h.Cert.TBSSHA256)
	e.names("DNS_NAMES", h.Cert.DNSNames)
	e.set("SUBJECT_DN", h.Cert.Subject)
	e.set("ISSUER_DN", h.Cert.Issuer)
	for _, v := range []struct {
		name string
		t    time.Time
	}{{"NOT_BEFORE", h.Cert.NotBefore}, {"NOT_AFTER", h.Cert.NotAfter}} {
		// certspotter's human-readable form is Go's time.Time.String in
		// UTC, e.g. "2024-01-26 03:47:26 +0000 UTC".
		e.set(v.name, v.t.UTC().Format("2006-01-02 15:04:05 -0700 MST"))
		e.set(v.name+"_UNIXTIME", strconv.FormatInt(v.t.Unix(), 10))
		e.set(v.name+"_RFC3339", rfc3339(v.t))
	}

	first := "(no DNS names)"
	if len(h.Cert.DNSNames) > 0 {
		first = capBytes(h.Cert.DNSNames[0], maxSummaryName)
	}
	s := fmt.Sprintf("%s %s: %s", strings.ToUpper(string(h.Severity)), h.Rule, first)
	if len(h.Cert.DNSNames) > 1 {
		s += fmt.Sprintf(" (+%d more)", len(h.Cert.DNSNames)-1)
	}
	return s
}

// describeEvent sets the variables of a log event and returns its summary,
// "log bad_signature: Google Argon".
func describeEvent(e *env, ev *event.LogEvent) string {
	e.set(prefix+"EVENT_KIND", string(ev.Kind))
	e.set(prefix+"LOG_NAME", ev.Log.Name)
	e.set(prefix+"LOG_URL", ev.Log.URL)
	// Index 0 means "no particular entry", except for a malformed entry,
	// which is always about one.
	malformed := ev.Kind == event.MalformedEntry
	if ev.Log.Index != 0 || malformed {
		e.set(prefix+"LOG_INDEX", strconv.FormatUint(ev.Log.Index, 10))
	}
	if !ev.Time.IsZero() {
		e.set(prefix+"TIME", rfc3339(ev.Time))
	}
	e.set(prefix+"DETAIL", ev.Detail)

	if malformed {
		e.set("EVENT", "malformed_cert")
		e.set("LOG_URI", ev.Log.URL)
		e.set("ENTRY_INDEX", strconv.FormatUint(ev.Log.Index, 10))
		e.set("PARSE_ERROR", ev.Detail)
	} else {
		e.set("EVENT", "error")
	}
	return fmt.Sprintf("log %s: %s", ev.Kind, ev.Log.Name)
}

// describeDigest sets the variables of a digest and returns its summary,
// "HIGH 1000 hits for rule our-names".
func describeDigest(e *env, d *event.Digest) string {
	e.set(prefix+"RULE", d.Rule)
	e.set(prefix+"SEVERITY", string(d.Severity))
	e.set(prefix+"COUNT", strconv.Itoa(d.Count))
	left := e.names(prefix+"DNS_NAMES", d.Names)
	e.set(prefix+"MORE_NAMES", strconv.Itoa(d.MoreNames+left))
	e.set(prefix+"FIRST", rfc3339(d.First))
	e.set(prefix+"LAST", rfc3339(d.Last))
	if d.URL != "" {
		e.set(prefix+"URL", d.URL)
	}
	e.set("EVENT", "digest")
	e.names("DNS_NAMES", d.Names)
	return fmt.Sprintf("%s %d hits for rule %s", strings.ToUpper(string(d.Severity)), d.Count, d.Rule)
}

// rfc3339 formats t in UTC.
func rfc3339(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

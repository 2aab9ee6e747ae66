package alerting

import (
	"slices"
	"strings"

	"github.com/ctwatch/ctwatch/event"
)

// Route says which messages a sink takes. Each non-empty field narrows the
// selection; the zero Route takes everything. A message that a sink's
// route does not take is acknowledged for that sink without delivery: it
// stays in the stream for the other sinks.
type Route struct {
	// MinSeverity skips hits of lower severity; "" takes all. It does not
	// apply to log events, which have no severity.
	MinSeverity event.Severity
	// Rules takes only hits of these rules (by name).
	Rules []string
	// Tags takes only hits of rules carrying at least one of these tags.
	Tags []string
	// Domains takes only hits with a DNS name equal to or under one of
	// these (lower-case ASCII, without a leading "." or "*."). A wildcard
	// name "*.shop.example" counts as under "shop.example".
	Domains []string
	// EventKinds takes only log events of these kinds; empty takes all.
	// Whether a sink receives log events at all is SinkOptions.Events.
	EventKinds []event.LogEventKind
}

// Match reports whether the route takes m. Digests are built from hits the
// route took already, so they always match. Safe for concurrent use.
func (r *Route) Match(m *Message) bool {
	switch {
	case m.Hit != nil:
		return r.matchHit(m.Hit)
	case m.Event != nil:
		return len(r.EventKinds) == 0 || slices.Contains(r.EventKinds, m.Event.Kind)
	}
	return true
}

func (r *Route) matchHit(h *event.Hit) bool {
	if r.MinSeverity != "" && h.Severity.Rank() < r.MinSeverity.Rank() {
		return false
	}
	if len(r.Rules) > 0 && !slices.Contains(r.Rules, h.Rule) {
		return false
	}
	if len(r.Tags) > 0 && !slices.ContainsFunc(h.Tags, func(t string) bool { return slices.Contains(r.Tags, t) }) {
		return false
	}
	if len(r.Domains) > 0 && !slices.ContainsFunc(h.Cert.DNSNames, r.underDomains) {
		return false
	}
	return true
}

// underDomains reports whether name is one of r.Domains or under one.
func (r *Route) underDomains(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(name, "*."), "."))
	for _, d := range r.Domains {
		if name == d || (len(name) > len(d) && strings.HasSuffix(name, d) && name[len(name)-len(d)-1] == '.') {
			return true
		}
	}
	return false
}

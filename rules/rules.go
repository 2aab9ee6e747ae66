// Package rules turns rule files into an Engine that says which rules a
// certificate matches, and why.
//
// A rule file is YAML with a stable envelope:
//
//	rules:
//	  - name: our-names            # unique across all files: [A-Za-z0-9._-]+
//	    severity: high             # info | low | medium | high | critical
//	    description: any certificate for our domains
//	    tags: [inventory]
//	    match:
//	      domains: [example.com, .example.com, "*.example.org"]
//
// Every key of a match mapping must hold; any, all and not nest matchers.
// New matchers will be added inside match, so files written today keep
// their meaning. Anything not understood (an unknown key, a matcher not
// supported yet) is an error with its file and line, never ignored.
//
// Other matchers look at the issuer and the chain (issuer, issuer_country,
// feed, allowed_issuers) or at the certificate itself (policy); the feeds
// and named issuer sets they use come from a Data given to Compile.
//
// Rules are compiled once: the watched domains of every rule go into one
// hashed index, so matching a certificate costs a few map lookups per name
// however many names are watched, and does no I/O. Feeds and issuer sets
// become hash sets at compile time. A rule whose match can only hold when
// one of its domains matched is evaluated only then; other rules (a feed
// rule, a policy rule) are evaluated for every certificate.
package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/event"
)

// RuleInfo describes a loaded rule, for listing (`ctwatch rules validate`)
// and for hits.
type RuleInfo struct {
	Name        string
	Severity    event.Severity
	Description string
	// Tags is nil when the rule has none.
	Tags []string
	// File and Line are where the rule starts.
	File string
	Line int
}

// Match is one rule matching one certificate.
type Match struct {
	Rule     string
	Severity event.Severity
	// Reason says what matched, quoting the certificate name and the
	// watched entry as written in the rule file.
	Reason string
}

// Engine holds compiled rules. It is immutable once built, so it is safe
// for concurrent use; a nil *Engine has no rules and matches nothing.
type Engine struct {
	rules []ruleDef
	index *domainIndex
	// leafRule maps each domains leaf to the rule it belongs to.
	leafRule []int32
	// always lists the rules (in order) that can hold without any of their
	// domains leaves matching, e.g. `not: {domains: [...]}`; they are
	// evaluated for every certificate. Every other rule is evaluated only
	// when one of its leaves matched.
	always []int32
	// issuers is asked about every certificate's issuer key when a rule
	// uses new_issuer; nil otherwise.
	issuers IssuerMemory
}

// build numbers the leaves of the parsed rules and indexes their domains.
func build(defs []ruleDef) *Engine {
	e := &Engine{index: newDomainIndex()}
	for i, def := range defs {
		ri := int32(i)
		e.rules = append(e.rules, def)
		e.addLeaves(ri, def.root)
		if !anchored(def.root) {
			e.always = append(e.always, ri)
		}
	}
	return e
}

func (e *Engine) addLeaves(rule int32, n *node) {
	if n.kind == nodeDomains {
		n.leaf = int32(len(e.leafRule))
		e.leafRule = append(e.leafRule, rule)
		for _, p := range n.patterns {
			e.index.add(n.leaf, p)
		}
		return
	}
	for _, c := range n.children {
		e.addLeaves(rule, c)
	}
}

// anchored reports whether n can hold only if at least one domains leaf
// under it matched. It errs on the side of false, which only costs an
// evaluation.
func anchored(n *node) bool {
	switch n.kind {
	case nodeDomains:
		return true
	case nodeAll:
		return slices.ContainsFunc(n.children, anchored)
	case nodeAny:
		return !slices.ContainsFunc(n.children, func(c *node) bool { return !anchored(c) })
	default:
		return false
	}
}

// Rules lists the loaded rules in the order of their files and, within a
// file, of their definitions. The slice is the caller's to keep.
func (e *Engine) Rules() []RuleInfo {
	if e == nil {
		return nil
	}
	out := make([]RuleInfo, len(e.rules))
	for i, r := range e.rules {
		out[i] = r.info
		out[i].Tags = slices.Clone(r.info.Tags)
	}
	return out
}

// Match returns the rules that c matches, in rule order, or nil. It does no
// I/O and is safe for concurrent use. When no name of c relates to any
// watched domain and no rule matches (the common case), it allocates
// nothing.
func (e *Engine) Match(c *cert.Cert) []Match {
	if e == nil || c == nil {
		return nil
	}
	var fired map[int32]hitRef
	for _, name := range c.DNSNames {
		fired = e.index.scan(normalizeCertName(name), fired)
	}
	candidates := e.always
	if fired != nil {
		candidates = slices.Clone(e.always)
		for leaf := range fired {
			candidates = append(candidates, e.leafRule[leaf])
		}
		slices.Sort(candidates)
		candidates = slices.Compact(candidates)
	}
	var slot celSlot
	st := matchState{fired: fired, cel: &slot}
	if e.issuers != nil && !c.IssuerSPKIHash.IsZero() {
		// Asked once per certificate, before any rule, so that every
		// new_issuer leaf of every rule sees the same answer.
		st.newIssuer = e.issuers.FirstSighting(c.IssuerSPKIHash)
	}
	var out []Match
	for _, ri := range candidates {
		r := &e.rules[ri]
		if why, ok := evalReason(r.root, c, st); ok {
			out = append(out, Match{Rule: r.info.Name, Severity: r.info.Severity, Reason: why})
		}
	}
	return out
}

// matchState is what one Match found out about a certificate before
// evaluating rules: the domains leaves that fired, and whether its issuer
// key is seen for the first time.
type matchState struct {
	fired     map[int32]hitRef
	newIssuer bool
	// cel holds the certificate's CEL binding once a CEL rule made it,
	// for the next ones to share; nil outside Match.
	cel *celSlot
}

// celSlot is where one Match keeps its CEL binding: it is made by the
// first CEL rule evaluated, so that a Match without CEL rules makes none.
type celSlot struct{ b *celBinding }

// check runs the checker of leaf n on c, sharing one CEL binding among
// the CEL rules of a Match that cel-go evaluates (a natively evaluated one
// needs none).
func (st matchState) check(n *node, c *cert.Cert) (string, bool) {
	if t, ok := n.check.(*celTest); ok && t.nat == nil && st.cel != nil {
		if st.cel.b == nil {
			st.cel.b = &celBinding{c: c}
		}
		return t.matchBound(st.cel.b)
	}
	return n.check.match(c)
}

// eval reports whether n holds for c, given the domains leaves that fired.
func eval(n *node, c *cert.Cert, st matchState) bool {
	switch n.kind {
	case nodeDomains:
		_, ok := st.fired[n.leaf]
		return ok
	case nodeAll:
		for _, ch := range n.children {
			if !eval(ch, c, st) {
				return false
			}
		}
		return true
	case nodeAny:
		for _, ch := range n.children {
			if eval(ch, c, st) {
				return true
			}
		}
		return false
	case nodeNot:
		return !eval(n.children[0], c, st)
	case nodeCheck:
		_, ok := st.check(n, c)
		return ok
	case nodeNewIssuer:
		return st.newIssuer
	}
	return false
}

// evalReason reports whether n holds for c and, when it does, why: the
// reason that reason would give. It runs every checker at most once, where
// eval followed by reason would run a holding checker twice (a lookalike
// or CEL test is the dearest part of a Match) when n is that checker or
// chooses among alternatives; a conjunction is still evaluated before its
// reasons are built, so that one that fails allocates nothing.
func evalReason(n *node, c *cert.Cert, st matchState) (string, bool) {
	switch n.kind {
	case nodeCheck:
		return st.check(n, c)
	case nodeAll:
		if len(n.children) == 1 {
			return evalReason(n.children[0], c, st)
		}
		// Establish that every child holds before building any reason,
		// so that a conjunction that fails allocates nothing.
		if !eval(n, c, st) {
			return "", false
		}
		parts := make([]string, len(n.children))
		for i, ch := range n.children {
			parts[i], _ = evalReason(ch, c, st)
		}
		return strings.Join(parts, " and "), true
	case nodeAny:
		for _, ch := range n.children {
			if why, ok := evalReason(ch, c, st); ok {
				return why, true
			}
		}
		return "", false
	}
	if !eval(n, c, st) {
		return "", false
	}
	return reason(n, c, st), true
}

// reason explains why n holds; it is called only when it does.
func reason(n *node, c *cert.Cert, st matchState) string {
	switch n.kind {
	case nodeDomains:
		return st.fired[n.leaf].reason()
	case nodeAll:
		parts := make([]string, len(n.children))
		for i, ch := range n.children {
			parts[i] = reason(ch, c, st)
		}
		return strings.Join(parts, " and ")
	case nodeAny:
		for _, ch := range n.children {
			if eval(ch, c, st) {
				return reason(ch, c, st)
			}
		}
	case nodeNot:
		return negReason(n.children[0], c, st)
	case nodeCheck:
		r, _ := st.check(n, c)
		return r
	case nodeNewIssuer:
		return newIssuerReason(c, true)
	}
	return ""
}

// negReason explains why n does not hold; it is called only when it doesn't.
func negReason(n *node, c *cert.Cert, st matchState) string {
	switch n.kind {
	case nodeDomains:
		if len(n.patterns) == 1 {
			return fmt.Sprintf("no dns name matches watched %q", n.patterns[0].display)
		}
		return fmt.Sprintf("no dns name matches any of %d watched domains", len(n.patterns))
	case nodeAll:
		for _, ch := range n.children {
			if !eval(ch, c, st) {
				return negReason(ch, c, st)
			}
		}
	case nodeAny:
		parts := make([]string, len(n.children))
		for i, ch := range n.children {
			parts[i] = negReason(ch, c, st)
		}
		return strings.Join(parts, " and ")
	case nodeNot:
		return reason(n.children[0], c, st)
	case nodeCheck:
		return "not " + n.check.describe()
	case nodeNewIssuer:
		return newIssuerReason(c, false)
	}
	return ""
}

// HitID is the dedupe key of a hit, used as the JetStream Msg-Id: the first
// 32 hex digits of SHA-256(rule || 0x00 || tbs). It depends only on the rule
// and the certificate's TBS hash, so a certificate and its precertificate,
// or one entry replayed after a restart, give the same ID.
func HitID(rule string, tbs cert.Hash) string {
	h := sha256.New()
	h.Write([]byte(rule))
	h.Write([]byte{0})
	h.Write(tbs[:])
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// NewHit builds the hit for match m, which e returned, on certificate c
// (which must not be nil), with the rule's tags for sinks to route on. log
// is where c was seen, nil when it did not come from a log (ctwatch
// check). The hit shares no memory with c or e.
func (e *Engine) NewHit(m Match, c *cert.Cert, log *event.LogRef) event.Hit {
	var tags []string
	if e != nil {
		// Hits are rare next to the entries matched, and rule sets small:
		// a scan costs less than keeping a second index in step.
		for i := range e.rules {
			if e.rules[i].info.Name == m.Rule {
				tags = slices.Clone(e.rules[i].info.Tags)
				break
			}
		}
	}
	return event.Hit{
		ID:       HitID(m.Rule, c.TBSHash),
		Rule:     m.Rule,
		Severity: m.Severity,
		Reason:   m.Reason,
		Tags:     tags,
		Log:      log,
		Cert:     c.Info(),
	}
}

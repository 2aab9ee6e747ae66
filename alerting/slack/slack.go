// Package slack is the sink that posts hits, log events and digests to a
// Slack channel through an incoming webhook, as Block Kit messages that a
// person can read and act on without opening anything else.
//
// One message is one POST of a JSON document with a header block (severity
// and rule, or log and event kind), a section of fields, a link to the
// certificate on crt.sh and a context line with the idempotency key. The
// top-level "text" repeats the essentials for notifications and for clients
// that cannot show blocks.
//
// Every field of a certificate is hostile input. Before it reaches Slack:
// invalid UTF-8, control and invisible characters (bidi overrides,
// zero-width joiners, non-ASCII spaces) become visible escapes such as
// \u202e; &, < and > become entities, so no text can open a link, a mention
// or a channel ping; names, issuers and rules are shown as inline code, so
// the asterisk of a wildcard name does not turn the rest of the line bold;
// and every mrkdwn object is marked verbatim, so Slack does not turn a
// look-alike domain into a clickable link. Every text is cut to Slack's
// limits on a character boundary, never inside a rune or an entity.
//
// Slack answers 200 "ok" when it took the message, 4xx with a short reason
// ("invalid_payload", "no_service", "channel_is_archived") when it did not,
// and 429 with Retry-After when the channel is rate limited; the last comes
// back as an error wrapping *alerting.RetryAfterError (see httpsink).
package slack

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	// The Block Kit types of slack-go are used rather than structs of our
	// own: they are the documented JSON shapes, maintained against Slack's
	// API, and cost nothing at run time. Its HTTP helpers are not used:
	// delivery goes through httpsink like every other HTTP integration, so
	// timeouts, TLS, redirects and Retry-After behave the same everywhere.
	// (WebhookMessage always writes "replace_original" and
	// "delete_original" as false; incoming webhooks ignore both.)
	slackapi "github.com/slack-go/slack"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/alerting/httpsink"
	"github.com/ctwatch/ctwatch/event"
)

// Slack's documented limits on a Block Kit message. They are counted in
// characters; we count UTF-16 code units, which is never less, so a text
// within our count is within Slack's whichever way it counts.
const (
	maxHeader      = 150  // header block, plain_text
	maxSectionText = 3000 // section text
	maxFieldText   = 2000 // each section field
	maxFields      = 10   // fields per section
	maxBlocks      = 50   // blocks per message
	maxContextText = 2000 // each context element (undocumented; kept modest)
	// maxFallback bounds the top-level text. Slack accepts far more, but it
	// only feeds notifications and previews.
	maxFallback = 3000
)

// Presentation choices.
const (
	maxHitNames = 10  // names listed for one hit; the rest is counted
	maxNameLen  = 255 // a DNS name is at most 253; longer ones are hostile
	maxIssuers  = 5   // issuers listed in a digest
	maxIssuer   = 400 // one issuer DN in a digest list
	timeLayout  = "2006-01-02 15:04:05 UTC"
	testPrefix  = "TEST — "
	ellipsis    = "…"
)

// Config says where and how to post. The loader resolves url / url_env /
// url_file into URL before New sees it.
type Config struct {
	// URL is the incoming webhook URL. It is a secret (whoever has it can
	// post to the channel), so errors and logs show only its scheme and
	// host.
	URL string
	// Timeout bounds one request; 0 means httpsink.DefaultTimeout.
	Timeout time.Duration
	// TLS configures the client (a private CA for a Slack-compatible
	// server behind a proxy, say); ignored when Client is set.
	TLS httpsink.TLS
	// Client sends the requests; nil means one that does not follow
	// redirects. Tests set it; production leaves it nil.
	Client *http.Client
}

// Notifier posts messages to one Slack incoming webhook. It is safe for
// concurrent use and holds no state between calls, so repeating a Notify
// posts the same document again.
type Notifier struct {
	poster *httpsink.Poster
}

// New checks cfg and returns a Notifier. Errors never echo the URL.
func New(cfg Config) (*Notifier, error) {
	p, err := httpsink.New(httpsink.Config{URL: cfg.URL, Timeout: cfg.Timeout, TLS: cfg.TLS, Client: cfg.Client})
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	return &Notifier{poster: p}, nil
}

// Notify posts m as one Block Kit message, making exactly one attempt. It
// returns nil once Slack answered 2xx; an error wrapping
// *alerting.RetryAfterError for 429 or 503 with Retry-After; any other
// error otherwise, quoting Slack's reason. A message without ID, or with
// neither hit, event nor digest, is an error.
func (n *Notifier) Notify(ctx context.Context, m *alerting.Message) error {
	id := m.ID()
	if id == "" {
		return errors.New("slack: message without id")
	}
	if !httpguts.ValidHeaderFieldValue(id) {
		return errors.New("slack: message id is not a valid header value")
	}
	msg, err := build(m)
	if err != nil {
		return err
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("slack: encode: %w", err)
	}
	header := http.Header{
		"Content-Type": {"application/json"},
		// Slack ignores these; a proxy or a Slack-compatible receiver
		// (Mattermost, Rocket.Chat) can drop duplicates with them.
		httpsink.IDHeader:             {id},
		httpsink.IdempotencyKeyHeader: {id},
	}
	if err := n.poster.Post(ctx, body, header); err != nil {
		return fmt.Errorf("slack: %w", err)
	}
	return nil
}

// build returns the message Notify posts for m: the Block Kit document of
// its hit, event or digest, marked as a test when m.Test. It is a pure
// function of m, so a message delivered again posts the same document.
func build(m *alerting.Message) (*slackapi.WebhookMessage, error) {
	var text string
	var blocks []slackapi.Block
	switch {
	case m.Hit != nil:
		text, blocks = hitBlocks(m.Hit, m.Test)
	case m.Event != nil:
		text, blocks = eventBlocks(m.Event, m.Test)
	case m.Digest != nil:
		text, blocks = digestBlocks(m.Digest, m.Test)
	default:
		return nil, errors.New("slack: message holds no hit, event or digest")
	}
	no := false
	return &slackapi.WebhookMessage{
		Text:   text,
		Blocks: &slackapi.Blocks{BlockSet: blocks[:min(len(blocks), maxBlocks)]},
		// A preview of crt.sh adds nothing, and an unfurl of any other link
		// would make Slack fetch it.
		UnfurlLinks: &no,
		UnfurlMedia: &no,
	}, nil
}

// hitBlocks renders one hit.
func hitBlocks(h *event.Hit, test bool) (string, []slackapi.Block) {
	sev := strings.ToUpper(string(h.Severity))
	header := headerBlock(prefix(test) + emoji(h.Severity) + " " + sev + " · " + h.Rule)

	fields := []*slackapi.TextBlockObject{
		field("Severity", text(sev, budget("Severity"))),
		field("Rule", code(h.Rule, budget("Rule"))),
		field("Reason", text(h.Reason, budget("Reason"))),
		field("Names", nameList(h.Cert.DNSNames, maxHitNames, 0, budget("Names"))),
		field("Issuer", code(h.Cert.Issuer, budget("Issuer"))),
		field("Validity", validity(h.Cert.NotBefore, h.Cert.NotAfter)),
	}
	if h.Log != nil {
		fields = append(fields,
			field("Log", code(h.Log.Name, budget("Log"))),
			field("Index", strconv.FormatUint(h.Log.Index, 10)))
	}
	blocks := []slackapi.Block{header, section(nil, fields)}

	if h.Cert.SHA256 != "" {
		line := link(alerting.CrtshURL(h.Cert.SHA256), "View the certificate on crt.sh")
		if h.Cert.Precert {
			line += " (precertificate)"
		}
		blocks = append(blocks, section(mrkdwn(line), nil))
	}
	blocks = append(blocks, contextBlock(h.ID, h.Tags, test))

	fb := prefix(test) + sev + " " + h.Rule + ": "
	switch names := h.Cert.DNSNames; len(names) {
	case 0:
		fb += "no DNS names"
	case 1:
		fb += names[0]
	default:
		fb += fmt.Sprintf("%s +%d more", names[0], len(names)-1)
	}
	return text(fb, maxFallback), blocks
}

// eventBlocks renders one log event.
func eventBlocks(ev *event.LogEvent, test bool) (string, []slackapi.Block) {
	sev := eventSeverity(ev.Kind)
	title := "Log " + string(ev.Kind) + ": " + ev.Log.Name
	header := headerBlock(prefix(test) + emoji(sev) + " " + title)

	fields := []*slackapi.TextBlockObject{
		field("Kind", code(string(ev.Kind), budget("Kind"))),
		field("Log", code(ev.Log.Name, budget("Log"))),
		field("Time", when(ev.Time)),
	}
	if ev.Log.URL != "" {
		fields = append(fields, field("Log URL", code(ev.Log.URL, budget("Log URL"))))
	}
	if ev.Log.Index != 0 {
		fields = append(fields, field("Index", strconv.FormatUint(ev.Log.Index, 10)))
	}
	detail := ev.Detail
	if detail == "" {
		detail = "(no detail)"
	}
	blocks := []slackapi.Block{
		header,
		section(mrkdwn("*Detail*\n"+text(detail, maxSectionText-len("*Detail*\n"))), nil),
		section(nil, fields),
		contextBlock(ev.ID, nil, test),
	}
	fb := prefix(test) + title
	if ev.Detail != "" {
		fb += " — " + ev.Detail
	}
	return text(fb, maxFallback), blocks
}

// digestBlocks renders a burst of hits of one rule as one message.
func digestBlocks(d *event.Digest, test bool) (string, []slackapi.Block) {
	sev := strings.ToUpper(string(d.Severity))
	title := fmt.Sprintf("%d hits for rule %s", d.Count, d.Rule)
	header := headerBlock(prefix(test) + emoji(d.Severity) + " " + title)

	fields := []*slackapi.TextBlockObject{
		field("Severity", text(sev, budget("Severity"))),
		field("Rule", code(d.Rule, budget("Rule"))),
		field("Hits", strconv.Itoa(d.Count)),
		field("First", when(d.First)),
		field("Last", when(d.Last)),
	}
	names := "*Names*\n"
	names += nameList(d.Names, len(d.Names), d.MoreNames, maxSectionText-len(names))
	blocks := []slackapi.Block{
		header,
		section(nil, fields),
		section(mrkdwn(names), nil),
		section(mrkdwn(issuerSummary(d.Hits)), nil),
	}
	if d.URL != "" {
		blocks = append(blocks, section(mrkdwn(link(d.URL, fmt.Sprintf("Full list of the %d hits", d.Count))), nil))
	}
	blocks = append(blocks, contextBlock(d.ID, nil, test))

	fb := prefix(test) + sev + ": " + title
	if len(d.Names) > 0 {
		shown := min(len(d.Names), 3)
		fb += ": " + strings.Join(d.Names[:shown], ", ")
		if more := len(d.Names) - shown + d.MoreNames; more > 0 {
			fb += fmt.Sprintf(" +%d more", more)
		}
	}
	return text(fb, maxFallback), blocks
}

// issuerSummary lists the distinct issuers among hits with their counts,
// most frequent first (ties by name, so the same digest renders the same),
// at most maxIssuers of them.
func issuerSummary(hits []event.Hit) string {
	counts := map[string]int{}
	for i := range hits {
		counts[hits[i].Cert.Issuer]++
	}
	type issuer struct {
		dn string
		n  int
	}
	list := make([]issuer, 0, len(counts))
	for dn, n := range counts {
		list = append(list, issuer{dn, n})
	}
	slices.SortFunc(list, func(a, b issuer) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.dn, b.dn))
	})
	var b strings.Builder
	b.WriteString("*Issuers*")
	if len(list) == 0 {
		b.WriteString("\nnone")
	}
	for _, is := range list[:min(len(list), maxIssuers)] {
		dn := is.dn
		if dn == "" {
			dn = "(empty issuer)"
		}
		fmt.Fprintf(&b, "\n• %s — %d", code(dn, maxIssuer), is.n)
	}
	if rest := len(list) - maxIssuers; rest > 0 {
		fmt.Fprintf(&b, "\n+%d more issuers", rest)
	}
	return b.String() // at most 5 × ~420 units: within a section
}

// nameList renders up to limit of names as inline code, one per line,
// within budget units, followed by "+N more" counting the names not shown
// plus extra (names the caller already left out).
func nameList(names []string, limit, extra, budget int) string {
	if len(names) == 0 && extra == 0 {
		return "none"
	}
	// Room for the widest possible "+N more" line.
	reserve := len("\n+ more") + len(strconv.Itoa(len(names)+extra))
	var b strings.Builder
	used, shown := 0, 0
	for _, name := range names[:min(len(names), limit)] {
		item := code(name, maxNameLen)
		sep := 0
		if shown > 0 {
			sep = 1
		}
		if used+sep+units(item)+reserve > budget {
			break
		}
		if sep > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(item)
		used += sep + units(item)
		shown++
	}
	if more := len(names) - shown + extra; more > 0 {
		if shown > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "+%d more", more)
	}
	return b.String()
}

// validity renders a certificate's validity period.
func validity(notBefore, notAfter time.Time) string {
	return when(notBefore) + " → " + when(notAfter)
}

// when renders a time in UTC, or "unknown" for the zero time.
func when(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format(timeLayout)
}

// prefix is what starts every title of a test message.
func prefix(test bool) string {
	if test {
		return testPrefix
	}
	return ""
}

// emoji marks a severity with a colour, so a channel can be scanned at a
// glance. Unknown severities get a neutral mark.
func emoji(s event.Severity) string {
	switch s {
	case event.SeverityCritical:
		return ":rotating_light:"
	case event.SeverityHigh:
		return ":red_circle:"
	case event.SeverityMedium:
		return ":large_orange_circle:"
	case event.SeverityLow:
		return ":large_yellow_circle:"
	}
	return ":large_blue_circle:"
}

// eventSeverity is how urgent a log event is: misbehaviour means the log
// can no longer be trusted, everything else is operational.
func eventSeverity(k event.LogEventKind) event.Severity {
	switch k {
	case event.BadSignature, event.InconsistentTree, event.ShrinkingTree:
		return event.SeverityCritical
	}
	return event.SeverityMedium
}

// contextBlock is the small print under a message: its ID, the rule's tags
// and, for a test, a warning that nothing happened.
func contextBlock(id string, tags []string, test bool) *slackapi.ContextBlock {
	var elems []slackapi.MixedElement
	if test {
		elems = append(elems, mrkdwn("*TEST* message sent by `ctwatch sinks test`: nothing was found, do not act on it"))
	}
	elems = append(elems, mrkdwn("id "+code(id, maxContextText-3)))
	if len(tags) > 0 {
		var b strings.Builder
		b.WriteString("tags")
		for i, t := range tags {
			if i == maxHitNames {
				fmt.Fprintf(&b, " +%d more", len(tags)-i)
				break
			}
			b.WriteString(" " + code(t, 100))
		}
		elems = append(elems, mrkdwn(b.String()))
	}
	return slackapi.NewContextBlock("", elems...)
}

// headerBlock returns a header with s cut to Slack's limit. Header text is
// plain_text: Slack shows it literally (apart from :emoji: codes), so it is
// not entity-escaped.
func headerBlock(s string) *slackapi.HeaderBlock {
	yes := true
	return slackapi.NewHeaderBlock(&slackapi.TextBlockObject{
		Type:  slackapi.PlainTextType,
		Text:  render(s, maxHeader, false, false),
		Emoji: &yes,
	})
}

// section returns a section block with a text, fields, or both; at most
// maxFields fields are kept.
func section(t *slackapi.TextBlockObject, fields []*slackapi.TextBlockObject) *slackapi.SectionBlock {
	return slackapi.NewSectionBlock(t, fields[:min(len(fields), maxFields)], nil)
}

// mrkdwn wraps already-rendered mrkdwn. Verbatim stops Slack from turning
// a look-alike domain in the text into a link; links we write ourselves
// (<url|text>) still work.
func mrkdwn(s string) *slackapi.TextBlockObject {
	return &slackapi.TextBlockObject{Type: slackapi.MarkdownType, Text: s, Verbatim: true}
}

// field returns a section field "*label*\nvalue"; value is already
// rendered within budget(label).
func field(label, value string) *slackapi.TextBlockObject {
	return mrkdwn("*" + label + "*\n" + value)
}

// budget is what is left of a field for its value once the label is in.
func budget(label string) int {
	return maxFieldText - len("**\n") - len(label)
}

// link renders a mrkdwn link to u. Characters that would end the link or
// its URL early (|, <, >, blanks) are percent-encoded and & is written as
// an entity, as Slack expects in all mrkdwn text.
func link(u, label string) string {
	var b strings.Builder
	b.WriteByte('<')
	for i := 0; i < len(u); i++ {
		switch c := u[i]; {
		case c == '&':
			b.WriteString("&amp;")
		case c <= ' ' || c >= 0x7f || c == '|' || c == '<' || c == '>':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('|')
	b.WriteString(text(label, 200))
	b.WriteByte('>')
	return b.String()
}

// text renders hostile s as mrkdwn within limit units.
func text(s string, limit int) string { return render(s, limit, true, false) }

// code renders hostile s as one inline code span within limit units,
// backticks included: inside it *, _ and ~ are literal.
func code(s string, limit int) string {
	return "`" + render(s, limit-2, true, true) + "`"
}

// render makes hostile s safe to show and cuts it to at most limit UTF-16
// units, ending with "…" when cut. Invalid UTF-8 becomes \xNN and every
// rune that is not printable (controls, format characters such as bidi
// overrides and zero-width joiners, non-ASCII spaces) becomes its Go escape
// (\n, \u202e), so nothing is hidden and no line can be faked. With md, &,
// < and > become entities; with inCode, backticks become \x60 so the span
// cannot be closed from inside. The cut falls between two escaped runes,
// never inside one.
func render(s string, limit int, md, inCode bool) string {
	var b strings.Builder
	used := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var piece string
		switch {
		case r == utf8.RuneError && size == 1:
			piece = fmt.Sprintf(`\x%02x`, s[i])
		case !strconv.IsPrint(r):
			piece = strings.Trim(strconv.QuoteRune(r), "'")
		case md && r == '&':
			piece = "&amp;"
		case md && r == '<':
			piece = "&lt;"
		case md && r == '>':
			piece = "&gt;"
		case inCode && r == '`':
			piece = `\x60`
		default:
			piece = s[i : i+size]
		}
		i += size
		n := units(piece)
		// Keep room for the ellipsis unless this piece ends the string.
		room := limit
		if i < len(s) {
			room--
		}
		if used+n > room {
			b.WriteString(ellipsis)
			break
		}
		b.WriteString(piece)
		used += n
	}
	return b.String()
}

// units is the length of s in UTF-16 code units.
func units(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

package email

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

// Limits on what one mail shows, so that a certificate with thousands of
// names still makes a readable mail of bounded size.
const (
	// maxBodyNames is how many DNS names the body lists; the rest is
	// counted.
	maxBodyNames = 100
	// maxIssuers is how many distinct issuers a digest lists.
	maxIssuers = 10
	// maxSubjectName is how many characters of the first DNS name (or of
	// a log name) the Subject shows.
	maxSubjectName = 100
	// maxSubject caps the whole Subject, in characters.
	maxSubject = 250
	// maxValue caps any single value in the body, in characters: a DN or
	// a reason is never legitimately longer.
	maxValue = 2000
	// maxHeaderValue caps a header value that is not encoded (the
	// message ID), within RFC 5322's 998-character line limit.
	maxHeaderValue = 900
)

// testNote is what a test message says first, in both parts.
const testNote = "TEST MESSAGE sent by `ctwatch sinks test`: nothing was found, do not act on it."

// content is one message rendered for a mail.
type content struct {
	subject    string
	text, html string
}

// row is one labelled line of the body. Value is shown as is (and as a
// link to URL when URL is set); Lines follow it, one per line.
type row struct {
	Label string
	Value string
	URL   string
	Lines []string
}

// render builds subject and both bodies of m. Every value taken from m
// has passed through show.
func render(m *alerting.Message) content {
	var title string
	var rows []row
	switch {
	case m.Hit != nil:
		title, rows = hitRows(m.Hit)
	case m.Event != nil:
		title, rows = eventRows(m.Event)
	case m.Digest != nil:
		title, rows = digestRows(m.Digest)
	}
	subject := "[ctwatch] " + title
	if m.Test {
		subject = "[TEST] " + subject
	}
	return content{
		subject: truncate(subject, maxSubject),
		text:    textBody(m.Test, rows),
		html:    htmlBody(m.Test, title, rows),
	}
}

// hitRows describes a hit: the subject's title
// ("HIGH our-names: www.example.com (+3 more)") and the body rows.
func hitRows(h *event.Hit) (string, []row) {
	names := h.Cert.DNSNames
	first := "(no DNS names)"
	if len(names) > 0 {
		first = truncate(show(names[0]), maxSubjectName)
	}
	title := fmt.Sprintf("%s %s: %s", severity(h.Severity), truncate(show(h.Rule), maxSubjectName), first)
	if len(names) > 1 {
		title += fmt.Sprintf(" (+%d more)", len(names)-1)
	}

	rows := []row{
		{Label: "Severity", Value: severity(h.Severity)},
		{Label: "Rule", Value: value(h.Rule)},
		{Label: "Reason", Value: value(h.Reason)},
	}
	if len(h.Tags) > 0 {
		rows = append(rows, row{Label: "Tags", Value: value(strings.Join(h.Tags, ", "))})
	}
	rows = append(rows, nameRow(names, 0))
	rows = append(rows,
		row{Label: "Subject", Value: value(h.Cert.Subject)},
		row{Label: "Issuer", Value: value(h.Cert.Issuer)},
		row{Label: "Validity", Value: timestamp(h.Cert.NotBefore) + " to " + timestamp(h.Cert.NotAfter)},
	)
	kind := "certificate"
	if h.Cert.Precert {
		kind = "precertificate"
	}
	rows = append(rows, row{Label: "Type", Value: kind})
	if h.Log != nil {
		rows = append(rows, row{
			Label: "Log",
			Value: fmt.Sprintf("%s (%s), index %d", value(h.Log.Name), value(h.Log.URL), h.Log.Index),
		})
	}
	crt := alerting.CrtshURL(h.Cert.SHA256)
	rows = append(rows,
		row{Label: "crt.sh", Value: crt, URL: crt},
		row{Label: "SHA-256", Value: value(h.Cert.SHA256)},
		row{Label: "ID", Value: value(h.ID)},
	)
	return title, rows
}

// eventRows describes a log event: "log bad_signature: Google Argon".
func eventRows(ev *event.LogEvent) (string, []row) {
	title := fmt.Sprintf("log %s: %s", truncate(show(string(ev.Kind)), maxSubjectName), truncate(show(ev.Log.Name), maxSubjectName))
	rows := []row{
		{Label: "Event", Value: value(string(ev.Kind))},
		{Label: "Log", Value: value(ev.Log.Name)},
		{Label: "Log URL", Value: value(ev.Log.URL)},
	}
	if ev.Log.Index != 0 {
		rows = append(rows, row{Label: "Index", Value: strconv.FormatUint(ev.Log.Index, 10)})
	}
	if !ev.Time.IsZero() {
		rows = append(rows, row{Label: "Time", Value: timestamp(ev.Time)})
	}
	rows = append(rows,
		row{Label: "Detail", Value: value(ev.Detail)},
		row{Label: "ID", Value: value(ev.ID)},
	)
	return title, rows
}

// digestRows describes a digest: "HIGH 1000 hits for rule our-names".
func digestRows(d *event.Digest) (string, []row) {
	title := fmt.Sprintf("%s %d hits for rule %s", severity(d.Severity), d.Count, truncate(show(d.Rule), maxSubjectName))
	rows := []row{
		{Label: "Severity", Value: severity(d.Severity)},
		{Label: "Rule", Value: value(d.Rule)},
		{Label: "Hits", Value: strconv.Itoa(d.Count)},
		{Label: "Period", Value: timestamp(d.First) + " to " + timestamp(d.Last)},
		nameRow(d.Names, d.MoreNames),
	}

	// Issuers by number of hits: a misbehaving CA stands out at the top.
	counts := map[string]int{}
	for i := range d.Hits {
		counts[d.Hits[i].Cert.Issuer]++
	}
	issuers := make([]string, 0, len(counts))
	for is := range counts {
		issuers = append(issuers, is)
	}
	slices.SortFunc(issuers, func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
	ir := row{Label: "Issuers", Value: strconv.Itoa(len(issuers))}
	for i, is := range issuers {
		if i == maxIssuers {
			ir.Lines = append(ir.Lines, fmt.Sprintf("… and %d more", len(issuers)-maxIssuers))
			break
		}
		ir.Lines = append(ir.Lines, fmt.Sprintf("%s (%d)", value(is), counts[is]))
	}
	rows = append(rows, ir)
	if d.URL != "" {
		rows = append(rows, row{Label: "Full list", Value: value(d.URL), URL: d.URL})
	}
	rows = append(rows, row{Label: "ID", Value: value(d.ID)})
	return title, rows
}

// nameRow lists names, at most maxBodyNames of them, and counts the rest
// plus more (names already left out upstream).
func nameRow(names []string, more int) row {
	r := row{Label: "Names", Value: strconv.Itoa(len(names) + more)}
	shown := names
	if len(shown) > maxBodyNames {
		shown = shown[:maxBodyNames]
	}
	for _, n := range shown {
		r.Lines = append(r.Lines, value(n))
	}
	if left := len(names) - len(shown) + more; left > 0 {
		r.Lines = append(r.Lines, fmt.Sprintf("… and %d more", left))
	}
	return r
}

// severity shows a severity as the mail shows it: upper case.
func severity(s event.Severity) string {
	return show(strings.ToUpper(string(s)))
}

// timestamp formats t as RFC 3339 in UTC.
func timestamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// value prepares a field for the body: shown safely and capped.
func value(s string) string {
	return truncate(show(s), maxValue)
}

// show returns s unchanged when it is valid UTF-8 made only of printable
// characters (letters, marks, numbers, punctuation, symbols, ASCII space),
// else Go-quoted. A newline, a tab, a bidi override or a zero-width
// character in a certificate field thus appears as an escape instead of
// breaking a line or disguising a name.
func show(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// truncate cuts s to at most n characters, marking a cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for j := range s {
		if count == n-1 {
			i = j
			break
		}
		count++
	}
	return s[:i] + "…"
}

// textBody renders rows as aligned "Label: value" lines.
func textBody(test bool, rows []row) string {
	var b strings.Builder
	if test {
		b.WriteString(testNote)
		b.WriteString("\n\n")
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "%-10s %s\n", r.Label+":", r.Value)
		for _, l := range r.Lines {
			b.WriteString("  ")
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	b.WriteString("\n-- \nSent by ctwatch.\n")
	return b.String()
}

// htmlTemplate is the HTML part. html/template escapes every value for its
// context, and replaces a URL with an unsafe scheme by "#ZgotmplZ".
var htmlTemplate = template.Must(template.New("mail").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family: sans-serif">
{{if .Test}}<p style="background: #fff3cd; padding: 0.5em; font-weight: bold">{{.Note}}</p>
{{end}}<h2>{{.Title}}</h2>
<table cellpadding="4">
{{range .Rows}}<tr><th align="left" valign="top">{{.Label}}</th><td>{{if .URL}}<a href="{{.URL}}">{{.Value}}</a>{{else}}{{.Value}}{{end}}{{range .Lines}}<br>{{.}}{{end}}</td></tr>
{{end}}</table>
<p style="color: #666">Sent by ctwatch.</p>
</body></html>
`))

// htmlBody renders rows as an HTML table.
func htmlBody(test bool, title string, rows []row) string {
	var b strings.Builder
	err := htmlTemplate.Execute(&b, struct {
		Test        bool
		Note, Title string
		Rows        []row
	}{test, testNote, title, rows})
	if err != nil {
		// The template is fixed and its data plain strings: failing here
		// is a bug, and a mail with only the text part still informs.
		return ""
	}
	return b.String()
}

// alternative builds a multipart/alternative body of text and html, each
// UTF-8 and quoted-printable (so no line is too long and no byte is 8-bit),
// and returns it with its boundary.
func alternative(text, html string) ([]byte, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range []struct{ ctype, body string }{
		{"text/plain", text},
		{"text/html", html},
	} {
		if p.body == "" {
			continue
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", p.ctype+"; charset=utf-8")
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		pw, err := mw.CreatePart(h)
		if err != nil {
			return nil, "", fmt.Errorf("mime part: %w", err)
		}
		qw := quotedprintable.NewWriter(pw)
		if _, err := qw.Write([]byte(p.body)); err != nil {
			return nil, "", fmt.Errorf("mime part: %w", err)
		}
		if err := qw.Close(); err != nil {
			return nil, "", fmt.Errorf("mime part: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("mime: %w", err)
	}
	return buf.Bytes(), mw.Boundary(), nil
}

// encodeHeader makes s safe as a header value: printable ASCII stays as
// is; anything else (non-ASCII, or a CR/LF that would start a new header)
// becomes RFC 2047 encoded-words, folded so that no line gets too long.
func encodeHeader(s string) string {
	enc := mime.QEncoding.Encode("utf-8", s)
	// mime separates the encoded-words by a space; a CRLF before that
	// space folds the header without changing its meaning (white space
	// between encoded-words is not part of the text).
	return strings.ReplaceAll(enc, "?= =?", "?=\r\n =?")
}

// checkHeaderValue rejects a value that encodeHeader would leave as one
// over-long line.
func checkHeaderValue(name, v string) error {
	if len(v) > maxHeaderValue {
		return fmt.Errorf("%s longer than %d bytes", name, maxHeaderValue)
	}
	return nil
}

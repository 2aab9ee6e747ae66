// Package stdout is the sink for people watching a terminal or a journal:
// one readable line per hit, log event or digest. It is what `ctwatch run`
// uses when nothing else is configured.
//
// Every field comes from certificates and logs on the network, so every
// field is escaped: a line never breaks, whatever a certificate contains.
// A test alert (`ctwatch sinks test`) starts with "TEST ", so that nobody
// acts on it and a grep for real alerts can skip it.
package stdout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

// maxNames is how many DNS names a hit line shows; the rest is counted. A
// digest line shows the digest's own names, already limited by the sink's
// group.max_names.
const maxNames = 8

// testPrefix starts the line of a test alert.
const testPrefix = "TEST "

// Notifier writes one line per message to an io.Writer. It is safe for
// concurrent use: lines are never interleaved.
type Notifier struct {
	mu sync.Mutex
	w  io.Writer
}

// New returns a Notifier writing to w (usually os.Stdout).
func New(w io.Writer) *Notifier {
	return &Notifier{w: w}
}

// Notify writes the line for m, prefixed with "TEST " when m.Test. It fails
// only if the writer fails; a Message with neither a hit, an event nor a
// digest is an error.
func (n *Notifier) Notify(_ context.Context, m *alerting.Message) error {
	var line string
	switch {
	case m.Hit != nil:
		line = FormatHit(m.Hit)
	case m.Event != nil:
		line = FormatEvent(m.Event)
	case m.Digest != nil:
		line = FormatDigest(m.Digest)
	default:
		return errors.New("stdout: message holds neither hit, event nor digest")
	}
	if m.Test {
		line = testPrefix + line
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := io.WriteString(n.w, line+"\n"); err != nil {
		return fmt.Errorf("stdout: write: %w", err)
	}
	return nil
}

// FormatHit returns the one-line summary of h, without a newline:
//
//	HIGH rule=our-names names=www.bank.example,bank.example issuer="CN=R11,O=Let's Encrypt,C=US" log="Google Argon" index=42 reason="..." id=...
func FormatHit(h *event.Hit) string {
	var b strings.Builder
	b.WriteString(token(strings.ToUpper(string(h.Severity))))
	field(&b, "rule", h.Rule)
	names := h.Cert.DNSNames
	more := 0
	if len(names) > maxNames {
		names, more = names[:maxNames], len(names)-maxNames
	}
	joined := strings.Join(names, ",")
	if more > 0 {
		joined += fmt.Sprintf(",+%d more", more)
	}
	field(&b, "names", joined)
	field(&b, "issuer", h.Cert.Issuer)
	if h.Log != nil {
		field(&b, "log", h.Log.Name)
		b.WriteString(" index=")
		b.WriteString(strconv.FormatUint(h.Log.Index, 10))
	}
	if h.Cert.Precert {
		b.WriteString(" precert")
	}
	field(&b, "reason", h.Reason)
	field(&b, "id", h.ID)
	return b.String()
}

// FormatDigest returns the one-line summary of d, without a newline; url is
// left out when d has none:
//
//	HIGH digest rule=our-names count=412 names=a.example,b.example,+398 more first=2026-01-02T03:04:05Z last=2026-01-02T03:05:00Z url=https://... id=...
func FormatDigest(d *event.Digest) string {
	var b strings.Builder
	b.WriteString(token(strings.ToUpper(string(d.Severity))))
	b.WriteString(" digest")
	field(&b, "rule", d.Rule)
	b.WriteString(" count=")
	b.WriteString(strconv.Itoa(d.Count))
	joined := strings.Join(d.Names, ",")
	if d.MoreNames > 0 {
		if joined != "" {
			joined += ","
		}
		joined += fmt.Sprintf("+%d more", d.MoreNames)
	}
	field(&b, "names", joined)
	b.WriteString(" first=")
	b.WriteString(d.First.UTC().Format(time.RFC3339))
	b.WriteString(" last=")
	b.WriteString(d.Last.UTC().Format(time.RFC3339))
	if d.URL != "" {
		field(&b, "url", d.URL)
	}
	field(&b, "id", d.ID)
	return b.String()
}

// FormatEvent returns the one-line summary of ev, without a newline:
//
//	EVENT kind=bad_signature log="Google Argon" index=42 time=2026-01-02T03:04:05Z detail="..." id=...
func FormatEvent(ev *event.LogEvent) string {
	var b strings.Builder
	b.WriteString("EVENT")
	field(&b, "kind", string(ev.Kind))
	field(&b, "log", ev.Log.Name)
	if ev.Log.Index != 0 {
		b.WriteString(" index=")
		b.WriteString(strconv.FormatUint(ev.Log.Index, 10))
	}
	if !ev.Time.IsZero() {
		b.WriteString(" time=")
		b.WriteString(ev.Time.UTC().Format(time.RFC3339))
	}
	field(&b, "detail", ev.Detail)
	field(&b, "id", ev.ID)
	return b.String()
}

// field appends " key=value", quoting the value when it is empty or holds
// anything but plain printable characters.
func field(b *strings.Builder, key, value string) {
	b.WriteByte(' ')
	b.WriteString(key)
	b.WriteByte('=')
	b.WriteString(token(value))
}

// token returns s as is when it is safe to print bare, else Go-quoted.
func token(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '=' {
			return strconv.Quote(s)
		}
	}
	return s
}

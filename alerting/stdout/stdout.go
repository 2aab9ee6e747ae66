// Package stdout is the sink for people watching a terminal or a journal:
// one readable line per hit or log event. It is what `ctwatch run` uses when
// nothing else is configured.
//
// Every field comes from certificates and logs on the network, so every
// field is escaped: a line never breaks, whatever a certificate contains.
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

// maxNames is how many DNS names a hit line shows; the rest is counted.
const maxNames = 8

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

// Notify writes the line for m. It fails only if the writer fails; a
// Message with neither a hit nor an event is an error.
func (n *Notifier) Notify(_ context.Context, m *alerting.Message) error {
	var line string
	switch {
	case m.Hit != nil:
		line = FormatHit(m.Hit)
	case m.Event != nil:
		line = FormatEvent(m.Event)
	default:
		return errors.New("stdout: message holds neither hit nor event")
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

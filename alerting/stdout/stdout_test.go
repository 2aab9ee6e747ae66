package stdout

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

func sampleHit() *event.Hit {
	return &event.Hit{
		ID:       "3f2a",
		Rule:     "our-names",
		Severity: event.SeverityHigh,
		Reason:   "bank.example issued by an issuer not on the allow list",
		Log:      &event.LogRef{Name: "Google 'Argon2026h1'", URL: "https://ct.googleapis.com/logs/us1/argon2026h1/", Index: 123456789},
		Cert: event.CertInfo{
			DNSNames: []string{"www.bank.example", "bank.example"},
			Issuer:   "CN=Qaznet Trust Network,O=Qaznet,C=KZ",
			Precert:  true,
		},
	}
}

func TestNotifyHitLine(t *testing.T) {
	var buf bytes.Buffer
	n := New(&buf)
	if err := n.Notify(t.Context(), &alerting.Message{Hit: sampleHit()}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want exactly one line, got %q", out)
	}
	for _, want := range []string{
		"HIGH ",
		"rule=our-names",
		"names=www.bank.example,bank.example",
		`issuer="CN=Qaznet Trust Network,O=Qaznet,C=KZ"`,
		`log="Google 'Argon2026h1'"`,
		"index=123456789",
		"precert",
		`reason="bank.example issued by an issuer not on the allow list"`,
		"id=3f2a",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("line lacks %q: %s", want, out)
		}
	}
}

func TestNotifyEventLine(t *testing.T) {
	var buf bytes.Buffer
	ev := &event.LogEvent{
		ID:     "ev9",
		Kind:   event.InconsistentTree,
		Log:    event.LogRef{Name: "Test Log", Index: 77},
		Time:   time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
		Detail: "root at size 100 differs",
	}
	if err := New(&buf).Notify(t.Context(), &alerting.Message{Event: ev}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"EVENT ", "kind=inconsistent_tree", `log="Test Log"`, "index=77", "time=2026-03-04T05:06:07Z", `detail="root at size 100 differs"`, "id=ev9"} {
		if !strings.Contains(out, want) {
			t.Errorf("line lacks %q: %s", want, out)
		}
	}
}

// Fields come from the network; none may break the line or forge a field.
func TestHostileFieldsStayOnOneLine(t *testing.T) {
	h := sampleHit()
	h.Reason = "x\nHIGH rule=forged"
	h.Cert.Issuer = "CN=\x1b[31mred\x1b[0m"
	h.Cert.DNSNames = []string{"a.example\r\nb", "c d"}
	h.Log = nil
	line := FormatHit(h)
	if strings.ContainsAny(line, "\r\n\x1b") {
		t.Fatalf("control characters reach the output: %q", line)
	}
	if strings.Contains(line, "index=") {
		t.Errorf("hit without log shows an index: %s", line)
	}
	if !strings.Contains(line, `reason="x\nHIGH rule=forged"`) {
		t.Errorf("reason not quoted: %s", line)
	}
}

func TestManyNamesAreSummarised(t *testing.T) {
	h := sampleHit()
	h.Cert.DNSNames = nil
	for i := range 100 {
		h.Cert.DNSNames = append(h.Cert.DNSNames, strings.Repeat("n", 3)+string(rune('a'+i%26))+".example")
	}
	line := FormatHit(h)
	if !strings.Contains(line, ",+92 more") {
		t.Errorf("100 names not summarised: %s", line)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestNotifyErrors(t *testing.T) {
	if err := New(failingWriter{}).Notify(context.Background(), &alerting.Message{Hit: sampleHit()}); err == nil {
		t.Error("write failure not reported")
	}
	if err := New(&bytes.Buffer{}).Notify(context.Background(), &alerting.Message{}); err == nil {
		t.Error("empty message accepted")
	}
}

func sampleDigest() *event.Digest {
	return &event.Digest{
		ID:        "dg7",
		Kind:      event.DigestKind,
		Rule:      "our-names",
		Severity:  event.SeverityHigh,
		Count:     412,
		First:     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Last:      time.Date(2026, 1, 2, 4, 5, 6, 0, time.FixedZone("UTC+1", 3600)),
		Names:     []string{"a.bank.example", "b.bank.example"},
		MoreNames: 398,
		URL:       "https://ctwatch.example/digests/dg7",
	}
}

func TestDigestLine(t *testing.T) {
	tests := []struct {
		name   string
		change func(*event.Digest)
		want   string
	}{
		{"full", func(*event.Digest) {},
			`HIGH digest rule=our-names count=412 names="a.bank.example,b.bank.example,+398 more" first=2026-01-02T03:04:05Z last=2026-01-02T03:05:06Z url=https://ctwatch.example/digests/dg7 id=dg7`},
		{"all names listed, no url", func(d *event.Digest) { d.MoreNames, d.URL, d.Count = 0, "", 2 },
			`HIGH digest rule=our-names count=2 names=a.bank.example,b.bank.example first=2026-01-02T03:04:05Z last=2026-01-02T03:05:06Z id=dg7`},
		{"no names", func(d *event.Digest) { d.Names, d.MoreNames = nil, 0 },
			`HIGH digest rule=our-names count=412 names="" first=2026-01-02T03:04:05Z last=2026-01-02T03:05:06Z url=https://ctwatch.example/digests/dg7 id=dg7`},
		{"hostile", func(d *event.Digest) {
			d.Rule = "r\nCRITICAL rule=forged"
			d.Names = []string{"a.example\r\nb", "<script>"}
			d.URL = "https://x.example/?a=b c"
		}, `HIGH digest rule="r\nCRITICAL rule=forged" count=412 names="a.example\r\nb,<script>,+398 more" first=2026-01-02T03:04:05Z last=2026-01-02T03:05:06Z url="https://x.example/?a=b c" id=dg7`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := sampleDigest()
			tc.change(d)
			var buf bytes.Buffer
			if err := New(&buf).Notify(t.Context(), &alerting.Message{Digest: d}); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tc.want+"\n" {
				t.Errorf("line\n got %q\nwant %q", got, tc.want+"\n")
			}
		})
	}
}

// A test alert says so at the start of its line, whatever it carries; a
// real one does not.
func TestTestMarker(t *testing.T) {
	ev := &event.LogEvent{ID: "ev1", Kind: event.LogUnreachable, Log: event.LogRef{Name: "L"}}
	tests := []struct {
		name string
		m    alerting.Message
		want string
	}{
		{"hit", alerting.Message{Hit: sampleHit(), Test: true}, "TEST HIGH rule=our-names "},
		{"event", alerting.Message{Event: ev, Test: true}, "TEST EVENT kind=log_unreachable "},
		{"digest", alerting.Message{Digest: sampleDigest(), Test: true}, "TEST HIGH digest rule=our-names "},
		{"real hit", alerting.Message{Hit: sampleHit()}, "HIGH rule=our-names "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := New(&buf).Notify(t.Context(), &tc.m); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); !strings.HasPrefix(got, tc.want) || strings.Count(got, "\n") != 1 {
				t.Errorf("line %q, want one line starting %q", got, tc.want)
			}
		})
	}
}

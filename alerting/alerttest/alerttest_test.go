package alerttest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
)

// SampleHit hands out a fresh hit each time: a test that changes one (the
// exec test makes a hostile variant) must not change the next.
func TestSampleHitIsFresh(t *testing.T) {
	a := SampleHit()
	a.Cert.DNSNames[0] = "changed.example"
	a.Tags[0] = "changed"
	a.Log.Index = 7
	b := SampleHit()
	if b.Cert.DNSNames[0] != "www.example.com" || b.Tags[0] != "kz" || b.Log.Index != 42 {
		t.Errorf("a change to one sample hit reached the next: %+v", b)
	}
}

func TestCorpusHit(t *testing.T) {
	h, x, der := CorpusHit(t, "1210e877747de0ef.pem")
	sum := sha256.Sum256(der)
	// Corpus files are named by the start of their certificate's SHA-256.
	if got := hex.EncodeToString(sum[:]); !strings.HasPrefix(got, "1210e877747de0ef") || h.Cert.SHA256 != got {
		t.Errorf("DER sha256 %s, hit sha256 %s: not the named certificate", got, h.Cert.SHA256)
	}
	if !reflect.DeepEqual(h.Cert.DNSNames, x.DNSNames) || len(x.DNSNames) != 137 {
		t.Errorf("hit has %d names, certificate %d (manifest: 137)", len(h.Cert.DNSNames), len(x.DNSNames))
	}
	if h.ID == "" || h.Rule == "" || h.Log == nil {
		t.Errorf("hit %+v lacks the fixed fields", h)
	}
}

// recorder is a testing.TB that keeps what CheckRetryAfter reports
// instead of failing the real test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestCheckRetryAfter(t *testing.T) {
	wrapped := func(d time.Duration) error {
		return fmt.Errorf("status 429: %w", &alerting.RetryAfterError{After: d})
	}
	tests := []struct {
		name     string
		err      error
		want     time.Duration
		wantFail bool
	}{
		{"nil, none wanted", nil, 0, false},
		{"plain error, none wanted", errors.New("status 500"), 0, false},
		{"wrapped, none wanted", wrapped(time.Second), 0, true},
		{"wrapped, that delay wanted", wrapped(7 * time.Second), 7 * time.Second, false},
		{"wrapped, another delay wanted", wrapped(3 * time.Second), 7 * time.Second, true},
		{"plain error, a delay wanted", errors.New("status 429"), 7 * time.Second, true},
		{"nil, a delay wanted", nil, 7 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			CheckRetryAfter(r, tt.err, tt.want)
			if failed := len(r.errs) > 0; failed != tt.wantFail {
				t.Errorf("reported %q, want a failure: %v", r.errs, tt.wantFail)
			}
		})
	}
}

package event_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ctwatch/ctwatch/event"
)

// checkSameAsStdlib fails t unless MarshalHit and AppendJSON produce exactly
// what json.Marshal produces for h, and fail exactly when it fails. The
// expectation always comes from encoding/json, never from the code under
// test.
func checkSameAsStdlib(t testing.TB, h *event.Hit) {
	t.Helper()
	want, wantErr := json.Marshal(h)

	got, err := event.MarshalHit(h)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("MarshalHit error = %v, json.Marshal error = %v", err, wantErr)
	}
	if err != nil {
		if got != nil {
			t.Errorf("MarshalHit returned %q with error %v", got, err)
		}
	} else {
		if !bytes.Equal(got, want) {
			t.Fatalf("MarshalHit differs from json.Marshal\n got: %s\nwant: %s", got, want)
		}
		// One allocation of the exact size, promised unless a DNS name
		// needs escaping (which encoding/json tells us).
		if h != nil && namesPlain(h.Cert.DNSNames) && cap(got) != len(got) {
			t.Errorf("MarshalHit: cap %d, len %d; want an exact-size slice", cap(got), len(got))
		}
	}

	// Appending keeps what dst held, and on failure appends nothing.
	prefix := []byte(`{"previous":1}` + "\n")
	dst := append(make([]byte, 0, 3*len(prefix)), prefix...)
	out, err := h.AppendJSON(dst)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("AppendJSON error = %v, json.Marshal error = %v", err, wantErr)
	}
	wantOut := append(append([]byte(nil), prefix...), want...)
	if !bytes.Equal(out, wantOut) {
		t.Fatalf("AppendJSON after a prefix\n got: %q\nwant: %q", out, wantOut)
	}
}

// namesPlain reports whether encoding/json writes every name as itself
// between quotes.
func namesPlain(names []string) bool {
	for _, n := range names {
		if q, _ := json.Marshal(n); len(q) != len(n)+2 {
			return false
		}
	}
	return true
}

// typicalHit is the shape of a real hit: a Let's Encrypt certificate
// for a handful of names, seen in a log.
func typicalHit() *event.Hit {
	return &event.Hit{
		ID:       "3b9f2c1e8d7a6b5c4d3e2f1a0b9c8d7e",
		Rule:     "example-brand",
		Severity: event.SeverityHigh,
		Reason:   `dns name "login.examp1e.com" looks like example.com`,
		Tags:     []string{"phishing", "brand"},
		Log: &event.LogRef{
			Name:  "Google 'Argon2026h1' log",
			URL:   "https://ct.googleapis.com/logs/us1/argon2026h1/",
			Index: 1234567890,
		},
		Cert: event.CertInfo{
			SHA256:           strings.Repeat("ab", 32),
			TBSSHA256:        strings.Repeat("cd", 32),
			Precert:          true,
			DNSNames:         []string{"login.examp1e.com", "www.login.examp1e.com", "*.examp1e.com"},
			Subject:          "CN=login.examp1e.com",
			Issuer:           "CN=R11,O=Let's Encrypt,C=US",
			IssuerSPKISHA256: strings.Repeat("ef", 32),
			NotBefore:        time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
			NotAfter:         time.Date(2026, 5, 30, 11, 59, 59, 0, time.UTC),
		},
	}
}

// with returns a fresh typical hit changed by f.
func with(f func(h *event.Hit)) *event.Hit {
	h := typicalHit()
	f(h)
	return h
}

func TestHitJSONMatchesStdlib(t *testing.T) {
	hard := "quote\" backslash\\ slash/ <script>&amp; \x00\x01\x07\b\f\n\r\t\x1b\x1f\x7f" +
		" \u2028\u2029 \u2027\u202a é 日本 🦀 \ufffd bad:\xff\xfe\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80 trunc:\xe2\x80"
	cases := []struct {
		name string
		hit  *event.Hit
	}{
		{"nil pointer", nil},
		{"zero value", &event.Hit{}},
		{"typical", typicalHit()},
		{"no log", with(func(h *event.Hit) { h.Log = nil })},
		{"zero log", with(func(h *event.Hit) { h.Log = &event.LogRef{} })},
		{"max index", with(func(h *event.Hit) { h.Log.Index = 1<<64 - 1 })},
		{"index 9", with(func(h *event.Hit) { h.Log.Index = 9 })},
		{"index 10", with(func(h *event.Hit) { h.Log.Index = 10 })},
		{"nil tags", with(func(h *event.Hit) { h.Tags = nil })},
		{"empty tags", with(func(h *event.Hit) { h.Tags = []string{} })},
		{"one empty tag", with(func(h *event.Hit) { h.Tags = []string{""} })},
		{"nil dns names", with(func(h *event.Hit) { h.Cert.DNSNames = nil })},
		{"empty dns names", with(func(h *event.Hit) { h.Cert.DNSNames = []string{} })},
		{"one dns name", with(func(h *event.Hit) { h.Cert.DNSNames = []string{"a.example"} })},
		{"empty dns name", with(func(h *event.Hit) { h.Cert.DNSNames = []string{"", ""} })},
		{"not precert", with(func(h *event.Hit) { h.Cert.Precert = false })},
		{"unknown severity", with(func(h *event.Hit) { h.Severity = "Sev<1>" })},
		{"hard strings everywhere", with(func(h *event.Hit) {
			h.ID, h.Rule, h.Severity, h.Reason = hard, hard, event.Severity(hard), hard
			h.Tags = []string{hard, "", hard}
			h.Log.Name, h.Log.URL = hard, hard
			h.Cert.SHA256, h.Cert.TBSSHA256, h.Cert.IssuerSPKISHA256 = hard, hard, hard
			h.Cert.Subject, h.Cert.Issuer = hard, hard
			h.Cert.DNSNames = []string{hard, hard}
		})},
		{"only escapes", with(func(h *event.Hit) { h.Reason = `"\<>&` + "\u2028\xff" })},
		{"escape at start and end", with(func(h *event.Hit) { h.Reason = "<middle>" })},
		{"lone continuation bytes", with(func(h *event.Hit) { h.Reason = "\x80\x80\xbf" })},
		{"valid U+FFFD", with(func(h *event.Hit) { h.Reason = "\xef\xbf\xbd" })},
		{"150 names", benchHit()},

		// Times: every fraction width, zero time, zones, monotonic clock.
		{"zero times", with(func(h *event.Hit) { h.Cert.NotBefore, h.Cert.NotAfter = time.Time{}, time.Time{} })},
		{"now with monotonic clock", with(func(h *event.Hit) { h.Cert.NotBefore = time.Now(); h.Cert.NotAfter = time.Now().UTC() })},
		{"year 0", with(func(h *event.Hit) { h.Cert.NotBefore = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"year 9999", with(func(h *event.Hit) {
			h.Cert.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
		})},
		{"zone +05:30", with(func(h *event.Hit) { h.Cert.NotBefore = h.Cert.NotBefore.In(time.FixedZone("IST", 5*3600+1800)) })},
		{"zone -08:00", with(func(h *event.Hit) { h.Cert.NotAfter = h.Cert.NotAfter.In(time.FixedZone("PST", -8*3600)) })},
		{"zone offset seconds", with(func(h *event.Hit) { h.Cert.NotBefore = h.Cert.NotBefore.In(time.FixedZone("", 37)) })},
		{"zone -00:00:37", with(func(h *event.Hit) { h.Cert.NotBefore = h.Cert.NotBefore.In(time.FixedZone("", -37)) })},
		{"zone +23:59", with(func(h *event.Hit) { h.Cert.NotBefore = h.Cert.NotBefore.In(time.FixedZone("", 24*3600-60)) })},
		{"named zone at offset 0", with(func(h *event.Hit) { h.Cert.NotBefore = h.Cert.NotBefore.In(time.FixedZone("GMT", 0)) })},

		// Times json.Marshal refuses: both must fail.
		{"year 10000", with(func(h *event.Hit) { h.Cert.NotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"year -1", with(func(h *event.Hit) { h.Cert.NotBefore = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"zone +24:00", with(func(h *event.Hit) { h.Cert.NotBefore = h.Cert.NotBefore.In(time.FixedZone("", 24*3600)) })},
		{"zone -100:00", with(func(h *event.Hit) { h.Cert.NotAfter = h.Cert.NotAfter.In(time.FixedZone("", -100*3600)) })},
	}
	for ns := 1; ns < 1e9; ns *= 10 { // fractions of 9 digits down to 1
		cases = append(cases, struct {
			name string
			hit  *event.Hit
		}{fmt.Sprintf("nanoseconds %d", ns), with(func(h *event.Hit) {
			h.Cert.NotBefore = h.Cert.NotBefore.Add(time.Duration(ns))
			h.Cert.NotAfter = h.Cert.NotAfter.Add(time.Duration(123456789 / ns * ns))
		})})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkSameAsStdlib(t, tc.hit)
		})
	}
}

// TestHitJSONErrorNamesField checks that a refused time says which field it
// was, so that an operator can find the bad certificate data.
func TestHitJSONErrorNamesField(t *testing.T) {
	cases := []struct {
		name  string
		hit   *event.Hit
		field string
	}{
		{"not_before", with(func(h *event.Hit) { h.Cert.NotBefore = time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC) }), "cert.not_before"},
		{"not_after", with(func(h *event.Hit) { h.Cert.NotAfter = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC) }), "cert.not_after"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := json.Marshal(tc.hit); err == nil {
				t.Fatal("json.Marshal accepted the hit; the case no longer tests a failure")
			}
			_, err := event.MarshalHit(tc.hit)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("MarshalHit error = %v; want one naming %s", err, tc.field)
			}
		})
	}
}

// TestHitJSONEveryField sets every field the struct holds, found by
// reflection, so that a field added to Hit, LogRef or CertInfo without a
// matching change to AppendJSON fails here even if no other test sets it.
func TestHitJSONEveryField(t *testing.T) {
	for seed := range 3 {
		var h event.Hit
		fill(t, reflect.ValueOf(&h).Elem(), seed)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			checkSameAsStdlib(t, &h)
		})
	}
}

// fill gives v and everything it holds a non-zero value that depends on
// seed. It fails the test on a kind it does not know, which is the signal
// that AppendJSON needs to learn it too.
func fill(t *testing.T, v reflect.Value, seed int) {
	t.Helper()
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(time.Date(2000+seed, 2, 3, 4, 5, 6, 7_000_000*(seed+1), time.FixedZone("", 3600*seed))))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d <%s> \"\u2028\xff", seed, v.Type().Name()))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint64, reflect.Uint32, reflect.Uint, reflect.Uint16, reflect.Uint8:
		v.SetUint(uint64(1000 + seed))
	case reflect.Int64, reflect.Int32, reflect.Int, reflect.Int16, reflect.Int8:
		v.SetInt(int64(-1000 - seed))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), seed+1, seed+1)
		for i := range s.Len() {
			fill(t, s.Index(i), seed+i)
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), seed)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), seed+i)
			}
		}
	default:
		t.Fatalf("fill: no rule for %s (kind %s); teach fill and AppendJSON", v.Type(), v.Kind())
	}
}

// TestHitJSONAllRunes runs every Unicode code point, every byte value at
// every position of a word, and a set of malformed sequences through the
// string encoder, in DNS names, against encoding/json.
func TestHitJSONAllRunes(t *testing.T) {
	var names []string
	var b []byte
	for r := rune(0); r <= utf8.MaxRune; r++ {
		b = utf8.AppendRune(b, r)
		if len(b) > 4000 {
			names = append(names, string(b))
			b = b[:0]
		}
	}
	names = append(names, string(b))
	for c := range 256 {
		names = append(names, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"z")
	}
	names = append(names,
		"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xbf\xbf", "\xf0\x80\x80\x80",
		"\xf5\x80\x80\x80", "\xf4\x8f\xbf", "\xe2\x80\xa8\xe2\x80", "\xe2\x80\xa9x")
	// Each byte at each position of plain text, so that every lane of the
	// eight-byte scan and the overlapping tail sees it, alone and after a
	// byte that already stops the scan.
	for c := range 256 {
		for pos := range 24 {
			for _, length := range []int{pos + 1, 24} {
				plain := []byte(strings.Repeat("abcdefgh", 3)[:length])
				plain[pos] = byte(c)
				names = append(names, string(plain))
				if pos > 0 {
					plain[pos-1] = 0x80
					names = append(names, string(plain))
				}
			}
		}
	}
	for i := 0; i < len(names); i += 50 {
		h := typicalHit()
		h.Cert.DNSNames = names[i:min(i+50, len(names))]
		checkSameAsStdlib(t, h)
	}
}

// FuzzHitJSON builds hits from fuzzed strings, numbers and times and checks
// that MarshalHit and AppendJSON agree with json.Marshal byte for byte, and
// fail exactly when it fails.
func FuzzHitJSON(f *testing.F) {
	f.Add("id", "rule", "high", "reason", "tag", uint8(2), "log", "https://log.example/", uint64(7), true,
		"abcd", "CN=x", false, "a.example", "b.example", uint8(2),
		int64(1700000000), int64(0), int32(0), int64(1710000000), int64(123456789), int32(3600))
	f.Add("", "", "", "", "", uint8(0), "", "", uint64(0), false,
		"", "", true, "", "", uint8(0),
		int64(-62135596800), int64(0), int32(0), int64(0), int64(0), int32(0))
	f.Add("<&>", "\u2028", "\xff", "\"\\", "\x00\x1f", uint8(1), "\x7f", "é🦀", uint64(1<<64-1), true,
		"\xed\xa0\x80", "\ufffd", true, "\n\t", "\u2029", uint8(1),
		int64(253402300800), int64(-1), int32(-86400), int64(-62167219201), int64(1e9), int32(86399))
	f.Fuzz(func(t *testing.T, id, rule, severity, reason, tag string, tagsMode uint8,
		logName, logURL string, index uint64, hasLog bool,
		hash, subject string, precert bool, dns1, dns2 string, dnsMode uint8,
		nbSec, nbNsec int64, nbOffset int32, naSec, naNsec int64, naOffset int32) {
		h := &event.Hit{
			ID:       id,
			Rule:     rule,
			Severity: event.Severity(severity),
			Reason:   reason,
			Tags:     stringsFor(tagsMode, tag, reason),
			Cert: event.CertInfo{
				SHA256:           hash,
				TBSSHA256:        id + hash,
				Precert:          precert,
				DNSNames:         stringsFor(dnsMode, dns1, dns2),
				Subject:          subject,
				Issuer:           dns2 + subject,
				IssuerSPKISHA256: hash + logURL,
				NotBefore:        time.Unix(nbSec, nbNsec).In(time.FixedZone(logName, int(nbOffset))),
				NotAfter:         time.Unix(naSec, naNsec).In(time.FixedZone("", int(naOffset))),
			},
		}
		if hasLog {
			h.Log = &event.LogRef{Name: logName, URL: logURL, Index: index}
		}
		switch tagsMode % 5 { // sometimes the zero time, and sometimes UTC
		case 3:
			h.Cert.NotBefore = time.Time{}
		case 4:
			h.Cert.NotAfter = h.Cert.NotAfter.UTC()
		}
		checkSameAsStdlib(t, h)
	})
}

// stringsFor turns a fuzzed mode into a nil, empty, one- or two-element
// slice, so that the fuzzer reaches every shape encoding/json tells apart.
func stringsFor(mode uint8, a, b string) []string {
	switch mode % 4 {
	case 0:
		return nil
	case 1:
		return []string{}
	case 2:
		return []string{a}
	}
	return []string{a, b}
}

// benchHit is a hit with 150 DNS names, the size of a large SAN list seen
// in CT, which is where reflection and buffer growth cost most.
func benchHit() *event.Hit {
	h := typicalHit()
	h.Cert.DNSNames = make([]string, 150)
	for i := range h.Cert.DNSNames {
		h.Cert.DNSNames[i] = fmt.Sprintf("shop-%03d.customer-sites.example.com", i)
	}
	return h
}

// BenchmarkHitJSON measures MarshalHit, the call the bus makes per hit.
// Compare with BenchmarkHitJSONStdlib.
func BenchmarkHitJSON(b *testing.B) {
	h := benchHit()
	data, err := event.MarshalHit(h)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.MarshalHit(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHitJSONAppend measures AppendJSON into a reused buffer: the
// cost of encoding alone, without the allocation.
func BenchmarkHitJSONAppend(b *testing.B) {
	h := benchHit()
	buf, err := h.AppendJSON(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = h.AppendJSON(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHitJSONStdlib is the baseline: json.Marshal as the bus called it
// before MarshalHit.
func BenchmarkHitJSONStdlib(b *testing.B) {
	h := benchHit()
	data, err := json.Marshal(h)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(h); err != nil {
			b.Fatal(err)
		}
	}
}

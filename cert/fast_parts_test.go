package cert

import (
	"encoding/asn1"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// TestValidOIDMatchesCryptobyte compares validOID and appendOID with
// cryptobyte's ReadASN1ObjectIdentifier, which crypto/x509 uses, and with
// asn1.ObjectIdentifier.String, on edge cases and random content octets
// biased towards the arc boundaries.
func TestValidOIDMatchesCryptobyte(t *testing.T) {
	inputs := [][]byte{
		nil, {0x00}, {0x27}, {0x28}, {0x4f}, {0x50}, {0x7f}, {0x80}, {0x81}, {0x81, 0x00},
		{0x2a, 0x80, 0x01}, {0x2a, 0x81, 0x80, 0x80, 0x80, 0x00},
		{0x2a, 0x87, 0xff, 0xff, 0xff, 0x7f}, // 2^31-1
		{0x2a, 0x88, 0x80, 0x80, 0x80, 0x00}, // 2^31
		{0x2a, 0xff, 0xff, 0xff, 0xff, 0x7f},
		{0x8f, 0xff, 0xff, 0xff, 0x7f}, // first arc pair at the limit
		{0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03},
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 0x01, 0x27, 0x28, 0x50, 0x7f, 0x80, 0x81, 0x87, 0x88, 0xff}
	for range 20000 {
		b := make([]byte, r.IntN(8))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		inputs = append(inputs, b)
	}
	for _, content := range inputs {
		elem := cryptobyte.String(elem(cbasn1.OBJECT_IDENTIFIER, content))
		var oid asn1.ObjectIdentifier
		want := elem.ReadASN1ObjectIdentifier(&oid)
		if got := validOID(content); got != want {
			t.Fatalf("validOID(%x) = %v, cryptobyte says %v", content, got, want)
		}
		if want {
			if got := string(appendOID(nil, content)); got != oid.String() {
				t.Fatalf("appendOID(%x) = %q, want %q", content, got, oid.String())
			}
		}
	}
}

// TestReadTimeMatchesCryptobyte compares readTime with cryptobyte's time
// readers, which crypto/x509 uses, on random canonical-looking times with
// fields around their limits, and on other forms.
func TestReadTimeMatchesCryptobyte(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	two := func(limit int) string { return fmt.Sprintf("%02d", r.IntN(limit)) }
	var inputs []string
	for range 20000 {
		tail := two(14) + two(33) + two(26) + two(62) + two(62) + "Z"
		inputs = append(inputs, "U"+two(100)+tail, "G"+fmt.Sprintf("%04d", r.IntN(10000))+tail)
	}
	inputs = append(inputs,
		"U000229000000Z", "U490101000000Z", "U500101000000Z", "U991231235959Z", "U680229000000Z",
		"G20000229000000Z", "G19000229000000Z", "G00000229000000Z", "G99991231235959Z",
		"U2501011200Z", "U250101120000+0100", "U250101120000-2359", "U25010112000Z", "U250101120000z",
		"U 50101120000Z", "U-50101120000Z", "U2501011200005", "G2025010112000Z", "G20250101120000.1Z",
		"G20250101120000+0000", "G+0250101120000Z", "G", "U",
	)
	for _, in := range inputs {
		tag := cbasn1.UTCTime
		if in[0] == 'G' {
			tag = cbasn1.GeneralizedTime
		}
		der := elem(tag, []byte(in[1:]))
		ref := cryptobyte.String(der)
		var want time.Time
		var wantOK bool
		if tag == cbasn1.UTCTime {
			wantOK = ref.ReadASN1UTCTime(&want)
		} else {
			wantOK = ref.ReadASN1GeneralizedTime(&want)
		}
		s := cryptobyte.String(der)
		got, ok := readTime(&s)
		if ok != wantOK {
			t.Fatalf("readTime(%s) ok = %v, cryptobyte says %v", in, ok, wantOK)
		}
		if !ok {
			continue
		}
		if !s.Empty() {
			t.Fatalf("readTime(%s) left %d bytes", in, len(s))
		}
		if got != want.UTC() {
			t.Fatalf("readTime(%s) = %v, want %v", in, got, want.UTC())
		}
	}
}

// TestMayBeIPAddress checks that the shortcut before netip.ParseAddr only
// skips strings it rejects.
func TestMayBeIPAddress(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const alphabet = "0123456789.:%abcfxAF-"
	inputs := []string{"192.0.2.1", "::1", "::ffff:192.0.2.1", "fe80::1%eth0.x", "1.2.3", "example.com", "1.2.3.4a", ""}
	for range 50000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	accepted := 0
	for _, s := range inputs {
		if _, err := netip.ParseAddr(s); err == nil {
			accepted++
			if !mayBeIPAddress(s) {
				t.Fatalf("mayBeIPAddress(%q) = false, but netip.ParseAddr accepts it", s)
			}
		}
	}
	if accepted < 100 {
		t.Fatalf("only %d inputs are addresses; the test proves little", accepted)
	}
}

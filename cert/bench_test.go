package cert

import (
	"path/filepath"
	"testing"
)

// BenchmarkParse decodes a real certificate with 163 DNS SANs.
func BenchmarkParse(b *testing.B) {
	der := readDER(b, azureLeafPEM)
	b.ReportAllocs()
	b.SetBytes(int64(len(der)))
	for b.Loop() {
		if _, err := Parse(der); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRFC6962Entry decodes an x509_entry built from the same real
// certificate and its real issuer, as get-entries would return it.
func BenchmarkDecodeRFC6962Entry(b *testing.B) {
	der, issuer := readDER(b, azureLeafPEM), readDER(b, azureIssuerPEM)
	leaf, extra := x509Leaf(1700000000000, der), chainExtra(issuer)
	b.ReportAllocs()
	b.SetBytes(int64(len(leaf) + len(extra)))
	for b.Loop() {
		if _, _, err := DecodeRFC6962Entry(leaf, extra); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashTBS measures the dedupe key alone (SCT list removal).
func BenchmarkHashTBS(b *testing.B) {
	tbs := stdParse(b, readDER(b, azureLeafPEM)).RawTBSCertificate
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HashTBS(tbs); err != nil {
			b.Fatal(err)
		}
	}
}

// corpusDERs returns the DER of every certificate of the shared corpus, in
// file name order, read with the standard library only.
func corpusDERs(tb testing.TB) [][]byte {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(corpusDir, "certs", "*.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) != 315 {
		tb.Fatalf("corpus has %d certificates, want 315", len(paths))
	}
	ders := make([][]byte, len(paths))
	for i, p := range paths {
		ders[i] = readDER(tb, p)
	}
	return ders
}

// BenchmarkDecodeCorpus decodes all 315 real certificates of the corpus per
// op: a mix of RSA and ECDSA leaves from many CAs, closer to a log's traffic
// than BenchmarkParse's single certificate.
func BenchmarkDecodeCorpus(b *testing.B) {
	ders := corpusDERs(b)
	size := 0
	for _, der := range ders {
		size += len(der)
	}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		for _, der := range ders {
			if _, err := Parse(der); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(ders))*float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

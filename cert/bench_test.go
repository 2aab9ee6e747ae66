package cert

import "testing"

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

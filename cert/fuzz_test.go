package cert

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"

	ctx509 "github.com/google/certificate-transparency-go/x509"
)

// fuzzSeeds returns small real certificates from testdata: two leaves, a
// precertificate with its issuer, and one that only the lenient parser
// reads. Seeds are kept near 1 KB: the fuzzer minimizes every new
// interesting input, and minimizing a 6 KB certificate takes most of a
// 20-second run (or pass -fuzzminimizetime=5s).
func fuzzSeeds(f *testing.F) (leaf, ecdsaLeaf, precert, inter, lenient []byte) {
	leaf = readDER(f, filepath.Join(corpusDir, "certs", "311c9de8e1ed0c07.pem"))
	ecdsaLeaf = readDER(f, filepath.Join(corpusDir, "certs", "0226e06e4a7ae551.pem"))
	precert = readDER(f, filepath.Join(ctGoDir, "submission_hammer_testdata_precert.der"))
	inter = readDER(f, filepath.Join(ctGoDir, "submission_hammer_testdata_intermediate.der"))
	lenient = stdPEMCerts(mustRead(f, filepath.Join(zlintDir, "rsaAlgIDNoNULLParams.pem")))[0]
	return
}

func FuzzParse(f *testing.F) {
	leaf, ecdsaLeaf, precert, inter, lenient := fuzzSeeds(f)
	for _, seed := range [][]byte{leaf, ecdsaLeaf, precert, inter, lenient, nil, {0x30, 0x00}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := Parse(der)
		if err != nil {
			if c != nil {
				t.Fatal("certificate returned with an error")
			}
			return
		}
		if c.SHA256 != sum(der) {
			t.Fatal("SHA256 is not the hash of the input")
		}
		_ = c.Info()
	})
}

func FuzzSplitPEMOrDER(f *testing.F) {
	leaf, _, precert, _, _ := fuzzSeeds(f)
	f.Add(leaf)
	f.Add(precert)
	f.Add(mustRead(f, filepath.Join(corpusDir, "certs", "311c9de8e1ed0c07.pem")))
	f.Add(mustRead(f, filepath.Join(zlintDir, "ctNoSCTsPoisoned.pem")))
	f.Add(mustRead(f, filepath.Join(ctGoDir, "testdata_test-cert.pem")))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := SplitPEMOrDER(data)
		if err != nil {
			return
		}
		if len(certs) == 0 {
			t.Fatal("no certificates and no error")
		}
		for _, c := range certs {
			if len(c) == 0 {
				t.Fatal("empty certificate")
			}
		}
		if len(certs) == 1 && bytes.Equal(certs[0], data) && data[0] != 0x30 {
			t.Fatal("input returned as DER but it is not a SEQUENCE")
		}
	})
}

func FuzzDecodeRFC6962Entry(f *testing.F) {
	leaf, ecdsaLeaf, precert, inter, lenient := fuzzSeeds(f)
	f.Add(x509Leaf(1, leaf), chainExtra(inter))
	f.Add(x509Leaf(2, ecdsaLeaf), chainExtra())
	f.Add(x509Leaf(3, lenient), chainExtra(inter, inter))
	precertTBS, err := ctx509.RemoveCTPoison(stdParse(f, precert).RawTBSCertificate)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(precertLeaf(4, sum(stdParse(f, inter).RawSubjectPublicKeyInfo), precertTBS), precertExtra(precert, inter))
	f.Fuzz(func(t *testing.T, leafInput, extraData []byte) {
		c, ts, err := DecodeRFC6962Entry(leafInput, extraData)
		if err != nil {
			if c != nil {
				t.Fatal("certificate returned with an error")
			}
			return
		}
		if want := binary.BigEndian.Uint64(leafInput[2:10]); ts != want {
			t.Fatalf("timestamp %d, want %d", ts, want)
		}
		if leafInput[11] == 1 && !c.Precert {
			t.Fatal("precert_entry decoded as a certificate")
		}
		_ = c.Info()
	})
}

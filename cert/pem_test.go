package cert

import (
	"bytes"
	"encoding/pem"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSplitPEMOrDER(t *testing.T) {
	corpusPEM := mustRead(t, azureLeafPEM)
	issuerPEM := mustRead(t, azureIssuerPEM)
	leafDER, issuerDER := readDER(t, azureLeafPEM), readDER(t, azureIssuerPEM)
	textDump := mustRead(t, filepath.Join(zlintDir, "evAllGood.pem")) // openssl text, then PEM
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x00}})
	broken := bytes.Replace(corpusPEM, []byte("MII"), []byte("M*I"), 1)

	tests := []struct {
		name    string
		data    []byte
		want    [][]byte // nil: want an error
		wantLen int      // when want is not spelled out
	}{
		{name: "one PEM certificate", data: corpusPEM, want: [][]byte{leafDER}},
		{name: "openssl text dump before the block", data: textDump, wantLen: 1},
		{name: "chain with text around and between", want: [][]byte{leafDER, issuerDER},
			data: slices.Concat([]byte("subject=leaf\n"), corpusPEM, []byte("\nissuer follows:\n"), issuerPEM, []byte("trailer"))},
		{name: "CRLF line endings", want: [][]byte{leafDER},
			data: []byte(strings.ReplaceAll(string(corpusPEM), "\n", "\r\n"))},
		{name: "private key skipped", data: slices.Concat(keyPEM, corpusPEM), want: [][]byte{leafDER}},
		{name: "DER certificate", data: leafDER, want: [][]byte{leafDER}},
		{name: "only a private key", data: keyPEM},
		{name: "empty", data: nil},
		{name: "text only", data: []byte("no certificate here\n")},
		{name: "DER with trailing byte", data: append(bytes.Clone(leafDER), '\n')},
		{name: "truncated DER", data: leafDER[:len(leafDER)-1]},
		{name: "broken base64", data: broken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SplitPEMOrDER(tt.data)
			wantErr := tt.want == nil && tt.wantLen == 0
			if wantErr {
				if err == nil {
					t.Fatalf("got %d certificates; want an error", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !slices.EqualFunc(got, tt.want, bytes.Equal) {
				t.Fatalf("got %d certificates, not the expected %d", len(got), len(tt.want))
			}
			if tt.wantLen != 0 && len(got) != tt.wantLen {
				t.Fatalf("got %d certificates, want %d", len(got), tt.wantLen)
			}
		})
	}
}

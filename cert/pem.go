package cert

import (
	"encoding/pem"
	"errors"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// SplitPEMOrDER returns the DER certificates in the contents of a file:
// every CERTIFICATE block of a PEM file, in order (text before, between and
// after blocks is ignored, so openssl text dumps work), or the file itself
// when it is a single DER element with nothing after it. Blocks of other
// types (keys, CSRs) are skipped. It returns an error when there is no
// certificate. The certificates are not parsed; see Parse. The returned
// slices may alias data.
func SplitPEMOrDER(data []byte) ([][]byte, error) {
	var certs [][]byte
	sawPEM := false
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		sawPEM = true
		if block.Type == "CERTIFICATE" && len(block.Bytes) > 0 {
			certs = append(certs, block.Bytes)
		}
	}
	if len(certs) > 0 {
		return certs, nil
	}
	if sawPEM {
		return nil, errors.New("cert: no CERTIFICATE block in PEM data")
	}
	in := cryptobyte.String(data)
	var elem cryptobyte.String
	if !in.ReadASN1Element(&elem, asn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("cert: neither PEM with a CERTIFICATE block nor a DER certificate")
	}
	return [][]byte{data}, nil
}

package cert

import (
	"crypto/sha256"
	"sync"
)

// Bounds of a Decoder's chain cache. A log has a few hundred issuing CAs;
// a hostile one that serves ever new chain certificates only costs us
// re-reading them, never memory beyond these.
const (
	maxCachedChainCerts = 4096
	maxCachedChainBytes = 8 << 20
)

// Decoder decodes log entries exactly as the package functions
// DecodeRFC6962Entry and FromTileLeaf do, but remembers what it read from
// each chain certificate (its SHA-256, key hash, subject, whether it signs
// precertificates). Chains repeat the same few intermediates on nearly
// every entry of a log, and hashing and walking them again for each entry
// was work done per entry that needed doing once per certificate.
//
// The zero value is ready to use, and a nil *Decoder decodes without a
// cache. A Decoder is safe for concurrent use; a tailer keeps one per log.
// Its cache is bounded (maxCachedChainCerts certificates, maxCachedChainBytes
// of DER) and simply emptied when full.
type Decoder struct {
	mu     sync.RWMutex
	chains map[string]chainInfo // keyed by the certificate's DER
	bytes  int
}

// chainInfo is what decoding takes from a chain certificate: its SHA-256
// always, and either what readChainCert found (with the subject rendered)
// or the error it gave.
type chainInfo struct {
	hash           Hash
	spkiHash       Hash
	subject        string
	precertSigning bool
	err            error
}

// readChainInfo reads a chain certificate without any cache.
func readChainInfo(der []byte) chainInfo {
	info := chainInfo{hash: sha256.Sum256(der)}
	cc, err := readChainCert(der)
	if err != nil {
		info.err = err
		return info
	}
	info.spkiHash = cc.spkiHash
	info.subject = nameString(cc.subject)
	info.precertSigning = cc.precertSigning
	return info
}

// chainCert returns what decoding needs of der, from the cache when d
// has read the same certificate before.
func (d *Decoder) chainCert(der []byte) chainInfo {
	if d == nil {
		return readChainInfo(der)
	}
	d.mu.RLock()
	info, ok := d.chains[string(der)]
	d.mu.RUnlock()
	if ok {
		return info
	}
	info = readChainInfo(der)
	if len(der) > maxCachedChainBytes {
		return info
	}
	d.mu.Lock()
	if d.chains == nil || len(d.chains) >= maxCachedChainCerts || d.bytes+len(der) > maxCachedChainBytes {
		d.chains = make(map[string]chainInfo)
		d.bytes = 0
	}
	if _, ok := d.chains[string(der)]; !ok {
		d.chains[string(der)] = info
		d.bytes += len(der)
	}
	d.mu.Unlock()
	return info
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/client"
	"github.com/google/certificate-transparency-go/jsonclient"
	"golang.org/x/crypto/cryptobyte"
)

// The harness reads the logs itself, independently of ctwatch, to know
// their size (when a fill is complete, when an entry first appears in a
// tree head) and, in the latency phase, which certificate sits at each new
// index. It trusts these local logs: signatures are ctwatch's business.

// newLogClient returns a ct-go client for an RFC 6962 API at url (CTFE's
// base URL, or TesseraCT's submission prefix). It has no public key, so it
// verifies no SCT or STH signature (saving the harness CPU), and it logs
// nothing: ct-go prints every back-off otherwise.
func newLogClient(url string, conns int) (*client.LogClient, error) {
	hc := &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	lc, err := client.New(url, hc, jsonclient.Options{
		UserAgent: "ctwatch-bench",
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		return nil, fmt.Errorf("log client for %s: %w", url, err)
	}
	return lc, nil
}

// rfcLog reads an RFC 6962 log.
type rfcLog struct{ lc *client.LogClient }

func (l rfcLog) treeSize(ctx context.Context) (uint64, error) {
	sth, err := l.lc.GetSTH(ctx)
	if err != nil {
		return 0, fmt.Errorf("get-sth: %w", err)
	}
	return sth.TreeSize, nil
}

// leaves returns the certificate of each entry in [start, end): the leaf,
// or the precertificate as submitted (from extra_data), which is what a
// hit's cert.sha256 is computed over.
func (l rfcLog) leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	var out [][]byte
	for start < end {
		rsp, err := l.lc.GetRawEntries(ctx, int64(start), int64(end-1))
		if err != nil {
			return nil, fmt.Errorf("get-entries %d-%d: %w", start, end-1, err)
		}
		if len(rsp.Entries) == 0 {
			return nil, fmt.Errorf("get-entries %d-%d: no entries", start, end-1)
		}
		for i := range rsp.Entries {
			e, err := ct.RawLogEntryFromLeaf(int64(start)+int64(i), &rsp.Entries[i])
			if err != nil {
				return nil, fmt.Errorf("entry %d: %w", start+uint64(i), err)
			}
			out = append(out, e.Cert.Data)
		}
		start += uint64(len(rsp.Entries))
	}
	return out, nil
}

// staticLog reads a static-ct-api log's monitoring side.
type staticLog struct {
	monitoringURL string
	hc            *http.Client
}

func newStaticLog(monitoringURL string) staticLog {
	return staticLog{monitoringURL: strings.TrimRight(monitoringURL, "/"), hc: &http.Client{Timeout: time.Minute}}
}

// errNotFound is a 404 from the file server: a partial tile deleted because
// its tile filled.
var errNotFound = errors.New("not found")

func (l staticLog) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.monitoringURL+path, nil)
	if err != nil {
		return nil, err
	}
	rsp, err := l.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(rsp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	switch rsp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusNotFound:
		return nil, fmt.Errorf("GET %s: %w", path, errNotFound)
	}
	return nil, fmt.Errorf("GET %s: %s", path, rsp.Status)
}

func (l staticLog) treeSize(ctx context.Context) (uint64, error) {
	body, err := l.get(ctx, "/checkpoint")
	if err != nil {
		return 0, err
	}
	return checkpointSize(body)
}

// checkpointSize reads the tree size, the second line of a checkpoint note.
func checkpointSize(note []byte) (uint64, error) {
	lines := strings.SplitN(string(note), "\n", 3)
	if len(lines) < 3 {
		return 0, fmt.Errorf("checkpoint of %d lines", len(lines))
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("checkpoint size: %w", err)
	}
	return n, nil
}

// tileIndexPath writes a tile index as tlog-tiles paths do: groups of three
// digits, all but the last prefixed with "x".
func tileIndexPath(n uint64) string {
	p := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		p = fmt.Sprintf("x%03d/", n%1000) + p
	}
	return p
}

// leaves returns the certificate (or precertificate) of each entry in
// [start, end) of a tree of at least end entries, from its data tiles.
func (l staticLog) leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	var out [][]byte
	for tile := start / 256; tile*256 < end; tile++ {
		width := min(end-tile*256, 256)
		path := "/tile/data/" + tileIndexPath(tile)
		body, err := l.get(ctx, path+partialSuffix(width))
		if errors.Is(err, errNotFound) && width < 256 {
			// The tile filled meanwhile and its partial was deleted.
			body, err = l.get(ctx, path)
		}
		if err != nil {
			return nil, err
		}
		certs, err := parseDataTile(body)
		if err != nil {
			return nil, fmt.Errorf("data tile %d: %w", tile, err)
		}
		if uint64(len(certs)) < width {
			return nil, fmt.Errorf("data tile %d holds %d entries, want %d", tile, len(certs), width)
		}
		lo := max(start, tile*256) - tile*256
		out = append(out, certs[lo:width]...)
	}
	return out, nil
}

func partialSuffix(width uint64) string {
	if width >= 256 {
		return ""
	}
	return ".p/" + strconv.FormatUint(width, 10)
}

// parseDataTile cuts a static-ct-api data tile into its entries' (pre-)
// certificates, as submitted.
func parseDataTile(data []byte) ([][]byte, error) {
	var out [][]byte
	s := cryptobyte.String(data)
	for !s.Empty() {
		var entryType uint16
		var cert, exts, fingerprints cryptobyte.String
		if !s.Skip(8) || !s.ReadUint16(&entryType) {
			return nil, fmt.Errorf("entry %d: truncated header", len(out))
		}
		switch entryType {
		case 0: // x509_entry
			if !s.ReadUint24LengthPrefixed(&cert) || !s.ReadUint16LengthPrefixed(&exts) {
				return nil, fmt.Errorf("entry %d: truncated x509_entry", len(out))
			}
		case 1: // precert_entry: issuer key hash, TBS, extensions, then the precertificate
			var tbs cryptobyte.String
			if !s.Skip(32) || !s.ReadUint24LengthPrefixed(&tbs) || !s.ReadUint16LengthPrefixed(&exts) ||
				!s.ReadUint24LengthPrefixed(&cert) {
				return nil, fmt.Errorf("entry %d: truncated precert_entry", len(out))
			}
		default:
			return nil, fmt.Errorf("entry %d: unknown entry type %d", len(out), entryType)
		}
		if !s.ReadUint16LengthPrefixed(&fingerprints) {
			return nil, fmt.Errorf("entry %d: truncated chain", len(out))
		}
		out = append(out, cert)
	}
	return out, nil
}

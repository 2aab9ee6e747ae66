package statictest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// TilePath returns the static-ct-api path of t relative to the monitoring
// prefix: "tile/<L>/<N>" for a hash tile, "tile/data/<N>" for a data tile
// (t.L == -1), with N in 3-digit groups, all but the last prefixed with "x"
// (1234067 is "x001/x234/067"), and ".p/<W>" for a partial tile (0 < W <
// 256; a W of 0 means a full tile, as in tlog). t.H must be 8. tlog's
// Tile.Path and torchwood.TilePath use other layouts ("tile/8/...",
// "tile/entries/..."), which is why a client of this log needs this one.
func TilePath(t tlog.Tile) string {
	var b strings.Builder
	b.WriteString("tile/")
	if t.L < 0 {
		b.WriteString("data")
	} else {
		b.WriteString(strconv.Itoa(t.L))
	}
	var groups []string
	n := t.N
	for {
		groups = append(groups, fmt.Sprintf("%03d", n%1000))
		n /= 1000
		if n == 0 {
			break
		}
	}
	for i := len(groups) - 1; i >= 0; i-- {
		b.WriteByte('/')
		if i > 0 {
			b.WriteByte('x')
		}
		b.WriteString(groups[i])
	}
	if t.W > 0 && t.W < TileWidth {
		b.WriteString(".p/")
		b.WriteString(strconv.Itoa(t.W))
	}
	return b.String()
}

// parseTilePath parses a canonical static-ct-api tile path relative to the
// monitoring prefix, as TilePath writes it, with a level of at most 5.
func parseTilePath(p string) (tlog.Tile, bool) {
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return tlog.Tile{}, false
	}
	// tlog's layout is ours with a height element; its parser rejects
	// non-canonical paths (leading zeros, bad widths).
	t, err := tlog.ParseTilePath("tile/8/" + rest)
	if err != nil || t.H != tileHeight || t.L > maxLevel || t.N < 0 {
		return tlog.Tile{}, false
	}
	return t, true
}

// serveHTTP runs one request through the switches (count, delay, failure)
// and then the endpoint.
func (l *Log) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Requests to paths outside /mon/ are counted under their full path.
	if _, handled := l.faults.Intercept(w, r); handled {
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, monPrefix+"/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case rest == PathCheckpoint:
		l.mu.Lock()
		body := l.checkpointNote()
		l.mu.Unlock()
		w.Header().Set("Cache-Control", "no-cache")
		write(w, "text/plain; charset=utf-8", body)
	case strings.HasPrefix(rest, PathIssuers):
		l.mu.Lock()
		der, ok := l.issuers[strings.TrimPrefix(rest, PathIssuers)]
		l.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		write(w, "application/pkix-cert", der)
	default:
		l.serveTile(w, r, rest)
	}
}

// write sends a 200 response with body.
func write(w http.ResponseWriter, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// serveTile serves the hash or data tile at path p (relative to the
// monitoring prefix), or 404 when the published tree does not have it.
func (l *Log) serveTile(w http.ResponseWriter, r *http.Request, p string) {
	t, ok := parseTilePath(p)
	if !ok {
		http.NotFound(w, r)
		return
	}
	l.mu.Lock()
	if !l.tileServed(t) {
		l.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	gz := l.forceGzip || (l.gzip && acceptsGzip(r.Header.Values("Accept-Encoding")))
	body, err := l.tileBody(t, gz)
	l.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("Vary", "Accept-Encoding")
	if gz {
		w.Header().Set("Content-Encoding", "gzip")
	}
	write(w, "application/octet-stream", body)
}

// tileServed reports whether tile t exists for the published checkpoint: a
// full tile once the tree covers it, a partial one when some published
// checkpoint needed it and (unless SetKeepPartials) its full tile is not
// served yet. l.mu must be held.
func (l *Log) tileServed(t tlog.Tile) bool {
	level := max(t.L, 0)
	if t.W <= 0 || t.W > TileWidth {
		return false
	}
	// Complete hashes at this level (entries for data tiles).
	have := l.cp.size >> (tileHeight * level)
	n := uint64(t.N)
	if n > have/TileWidth {
		return false
	}
	end := n*TileWidth + uint64(t.W)
	if end > have {
		return false
	}
	if t.W == TileWidth {
		return true
	}
	if !l.keepPartials && (n+1)*TileWidth <= have {
		return false
	}
	_, ok := l.partials[level][end]
	return ok
}

// tileBody returns the body of a served tile t, gzipped if gz. l.mu must be
// held.
func (l *Log) tileBody(t tlog.Tile, gz bool) ([]byte, error) {
	full := t.W == TileWidth
	if full {
		if b, ok := l.tiles[tileKey{t, gz}]; ok {
			return b, nil
		}
	}
	var body []byte
	if gz {
		plain, err := l.tileBody(t, false)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(plain); err != nil {
			return nil, fmt.Errorf("gzip tile: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip tile: %w", err)
		}
		body = buf.Bytes()
	} else if t.L < 0 {
		var err error
		if body, err = l.dataTile(t); err != nil {
			return nil, err
		}
	} else {
		var err error
		if body, err = tlog.ReadTileData(t, l.hashReader()); err != nil {
			return nil, fmt.Errorf("read tile: %w", err)
		}
	}
	if full {
		l.tiles[tileKey{t, gz}] = body
	}
	return body, nil
}

// dataTile concatenates the entries of data tile t, tampered ones as
// TamperEntry says. l.mu must be held.
func (l *Log) dataTile(t tlog.Tile) ([]byte, error) {
	start := uint64(t.N) * TileWidth
	entries := l.entries[start : start+uint64(t.W)]
	size := 0
	for _, e := range entries {
		size += len(e.enc)
	}
	body := make([]byte, 0, size)
	for i, e := range entries {
		if !l.tampered[start+uint64(i)] {
			body = append(body, e.enc...)
			continue
		}
		leaf := e.leaf
		leaf.Timestamp++
		tampered, err := encodeEntry(leaf)
		if err != nil {
			return nil, fmt.Errorf("tamper entry %d: %w", start+uint64(i), err)
		}
		body = append(body, tampered.enc...)
	}
	return body, nil
}

// acceptsGzip reports whether Accept-Encoding header values accept gzip:
// "gzip" listed without a zero quality or, when gzip is not listed, "*"
// without a zero quality.
func acceptsGzip(values []string) bool {
	gzipOK, starOK, listed := false, false, false
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "gzip":
				listed = true
				gzipOK = !zeroQuality(params)
			case "*":
				starOK = !zeroQuality(params)
			}
		}
	}
	if listed {
		return gzipOK
	}
	return starOK
}

// zeroQuality reports whether Accept-Encoding parameters hold q=0.
func zeroQuality(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		name, value, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		return err == nil && q == 0
	}
	return false
}

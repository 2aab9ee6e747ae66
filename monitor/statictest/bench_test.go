package statictest_test

import (
	"io"
	"net/http"
	"strconv"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/ctwatch/ctwatch/monitor/statictest"
)

// BenchmarkDataTile measures the log serving full data tiles of real
// certificates over loopback HTTP, plain and gzipped (decompressed by Go's
// transport): the ceiling it puts on a client's speed.
func BenchmarkDataTile(b *testing.B) {
	for _, gz := range []bool{false, true} {
		b.Run("gzip="+strconv.FormatBool(gz), func(b *testing.B) {
			ca := newCA(b)
			l := newLog(b)
			der, err := ca.Leaf("bench.example", "www.bench.example")
			if err != nil {
				b.Fatal(err)
			}
			const tiles = 4
			for range tiles * statictest.TileWidth {
				l.AddX509(der, ca.Chain())
			}
			l.Publish()
			l.SetGzip(gz)
			hc := &http.Client{}
			n := 0
			for b.Loop() {
				path := statictest.TilePath(tlog.Tile{H: 8, L: -1, N: int64(n % tiles), W: statictest.TileWidth})
				resp, err := hc.Get(l.MonitoringURL() + "/" + path)
				if err != nil {
					b.Fatal(err)
				}
				nb, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d, %v", resp.StatusCode, err)
				}
				b.SetBytes(nb)
				n++
			}
			b.ReportMetric(float64(b.N*statictest.TileWidth)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkReadVerified measures torchwood's verifying client reading 1024
// entries from the log: data tiles, hash tiles and the tree hash check.
func BenchmarkReadVerified(b *testing.B) {
	ca := newCA(b)
	l := newLog(b)
	der, err := ca.Leaf("bench.example")
	if err != nil {
		b.Fatal(err)
	}
	const n = 1024
	for range n {
		l.AddX509(der, ca.Chain())
	}
	l.Publish()
	c, _ := newClient(b, l)
	tree := mustCheckpoint(b, l).Tree
	for b.Loop() {
		if got := mustEntries(b, c, tree, 0); len(got) != n {
			b.Fatalf("read %d entries", len(got))
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkAddX509(b *testing.B) {
	ca := newCA(b)
	l := newLog(b)
	der, err := ca.Leaf("bench.example")
	if err != nil {
		b.Fatal(err)
	}
	chain := ca.Chain()
	for b.Loop() {
		l.AddX509(der, chain)
	}
}

func BenchmarkPublish(b *testing.B) {
	ca := newCA(b)
	l := newLog(b)
	der, err := ca.Leaf("bench.example")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		l.AddX509(der, nil)
		l.Publish()
	}
}

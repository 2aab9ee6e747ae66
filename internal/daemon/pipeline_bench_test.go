package daemon

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/cert"
	"github.com/ctwatch/ctwatch/monitor"
	"github.com/ctwatch/ctwatch/monitor/ctlogtest"
	"github.com/ctwatch/ctwatch/monitor/statictest"
	"github.com/ctwatch/ctwatch/rules"
)

// benchEntries is the size of the log each benchmark op backfills.
const benchEntries = 20000

// corpus reads the real leaf certificates in testdata/corpus.
func corpus(b *testing.B) [][]byte {
	b.Helper()
	files, err := filepath.Glob("../../testdata/corpus/certs/*.pem")
	if err != nil || len(files) == 0 {
		b.Fatalf("no corpus: %v", err)
	}
	var ders [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		blk, _ := pem.Decode(data)
		if blk == nil {
			b.Fatalf("%s: no PEM block", f)
		}
		ders = append(ders, blk.Bytes)
	}
	return ders
}

// benchRules watches the names of one certificate in 20, the way a team
// watches its own names among everyone else's.
func benchRules(b *testing.B, ders [][]byte) *rules.Engine {
	b.Helper()
	var watch []string
	for i, der := range ders {
		if i%20 != 0 {
			continue
		}
		c, err := cert.Parse(der)
		if err != nil || len(c.DNSNames) == 0 {
			continue
		}
		watch = append(watch, fmt.Sprintf("%q", "."+strings.TrimPrefix(c.DNSNames[0], "*.")))
	}
	engine, err := rules.Parse("bench.yaml", []byte("rules:\n  - name: ours\n    severity: high\n    match:\n      domains: ["+strings.Join(watch, ", ")+"]\n"))
	if err != nil {
		b.Fatal(err)
	}
	return engine
}

// BenchmarkPipeline measures the whole path of one RFC 6962 log: an
// in-process log serving real certificates over HTTP, the tailer (fetch,
// verify against the signed root, decode, match), and publication of hits
// and checkpoints to an embedded JetStream. One op is a full backfill of
// benchEntries entries; the entries/s metric is the figure to compare.
func BenchmarkPipeline(b *testing.B) {
	ders := corpus(b)
	l, err := ctlogtest.New()
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for i := range benchEntries {
		l.AddX509(ders[i%len(ders)], nil)
	}
	l.Publish()
	log := monitor.Log{Name: "bench", Kind: monitor.KindRFC6962, URL: l.URL(), Key: l.PublicKeyDER()}
	benchBackfill(b, ders, log, func(log *monitor.Log, tc monitor.TailerConfig) (runner, error) {
		return monitor.NewRFC6962Tailer(log, tc)
	})
}

// BenchmarkPipelineStatic is BenchmarkPipeline for a static-ct-api log:
// checkpoint, hash and data tiles, issuers, verified with torchwood.
func BenchmarkPipelineStatic(b *testing.B) {
	ders := corpus(b)
	l, err := statictest.New()
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for i := range benchEntries {
		l.AddX509(ders[i%len(ders)], nil)
	}
	l.Publish()
	log := monitor.Log{Name: "bench", Kind: monitor.KindStatic, URL: l.SubmissionURL(), MonitoringURL: l.MonitoringURL(),
		Origin: l.Origin(), Key: l.PublicKeyDER()}
	benchBackfill(b, ders, log, func(log *monitor.Log, tc monitor.TailerConfig) (runner, error) {
		return monitor.NewStaticTailer(log, tc)
	})
}

// benchBackfill runs one backfill of the log per op, with real JetStream
// publishing and checkpoints.
func benchBackfill(b *testing.B, ders [][]byte, log monitor.Log, newTailer func(*monitor.Log, monitor.TailerConfig) (runner, error)) {
	engine := benchRules(b, ders)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	srv, err := alerting.StartEmbedded(ctx, b.TempDir(), logger)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	bus, err := alerting.Open(ctx, nc, alerting.StreamConfig{})
	if err != nil {
		b.Fatal(err)
	}
	caughtUp := make(chan struct{}, 1)
	store := &notifyingStore{CheckpointStore: monitor.NewKVCheckpoints(bus.Checkpoints()), at: benchEntries, reached: caughtUp}
	start := uint64(0)
	log.Start = &start

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		key := hex.EncodeToString(log.ID[:])
		if log.ID != (cert.Hash{}) {
			if err := bus.Checkpoints().Purge(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
		l := log
		t, err := newTailer(&l, monitor.TailerConfig{
			Fetch:       monitor.FetchOptions{BatchSize: 256, Concurrency: 4, Rate: 0, VerifyEvery: 8192, PollInterval: 1},
			Matcher:     newRuleMatcher(engine),
			Publisher:   bus,
			Checkpoints: store,
			Logger:      logger,
		})
		if err != nil {
			b.Fatal(err)
		}
		log.ID = l.ID
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- t.Run(runCtx) }()
		select {
		case err := <-done:
			b.Fatalf("tailer stopped: %v", err)
		case <-caughtUp:
		}
		b.StopTimer()
		cancel()
		<-done
		b.StartTimer()
	}
	b.ReportMetric(float64(benchEntries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// notifyingStore signals when a checkpoint at or past a position is saved:
// the moment every hit before it is durably in JetStream.
type notifyingStore struct {
	monitor.CheckpointStore
	at      uint64
	reached chan struct{}
}

func (s *notifyingStore) Save(ctx context.Context, logID string, cp *monitor.Checkpoint) error {
	if err := s.CheckpointStore.Save(ctx, logID, cp); err != nil {
		return err
	}
	if cp.NextIndex >= s.at {
		select {
		case s.reached <- struct{}{}:
		default:
		}
	}
	return nil
}

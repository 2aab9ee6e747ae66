package alerting_test

import (
	"fmt"
	"testing"

	"github.com/ctwatch/ctwatch/alerting"
)

// BenchmarkPublishHits measures storing a batch of 100 hits with acks, the
// monitor's hot path after a busy get-entries batch.
func BenchmarkPublishHits(b *testing.B) {
	e, err := alerting.StartEmbedded(b.Context(), b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Shutdown()
	nc, err := e.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	bus, err := alerting.Open(b.Context(), nc, alerting.StreamConfig{})
	if err != nil {
		b.Fatal(err)
	}
	hits := makeHits("bench", 100)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for j := range hits {
			hits[j].ID = fmt.Sprintf("bench-%d-%d", i, j)
		}
		i++
		if err := bus.PublishHits(b.Context(), hits); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(hits))/b.Elapsed().Seconds(), "hits/s")
}

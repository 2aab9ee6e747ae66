package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// hitReceiver is the webhook endpoint of one ctwatch run: it records when
// each expected hit first arrived. Safe for concurrent use.
type hitReceiver struct {
	plan entryPlan
	rule string // the rule whose hits are expected

	mu         sync.Mutex
	byEntry    map[int]time.Time    // entry number → first arrival
	bySHA      map[string]time.Time // cert SHA-256 → first arrival
	deliveries int
	otherHits  int // hits of other rules (the example's other matchers)
	events     int // log events
	bad        []string
	want       int           // expected distinct entries; allIn closes when reached
	allIn      chan struct{} // closed once byEntry holds want entries
	lastNew    time.Time     // arrival of the last new expected entry
}

func newHitReceiver(plan entryPlan, rule string, want int) *hitReceiver {
	r := &hitReceiver{
		plan: plan, rule: rule, want: want,
		byEntry: map[int]time.Time{}, bySHA: map[string]time.Time{},
		allIn: make(chan struct{}),
	}
	if want <= 0 {
		close(r.allIn)
	}
	return r
}

// webhookDoc is the part of a webhook body the harness reads: a hit
// (docs/sinks.md, event.Hit) or, without cert, a log event.
type webhookDoc struct {
	ID   string `json:"id"`
	Rule string `json:"rule"`
	Cert *struct {
		SHA256   string   `json:"sha256"`
		DNSNames []string `json:"dns_names"`
	} `json:"cert"`
}

func (r *hitReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var doc webhookDoc
	jsonErr := json.Unmarshal(body, &doc)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries++
	switch {
	case jsonErr != nil:
		r.bad = append(r.bad, fmt.Sprintf("not JSON: %v", jsonErr))
	case doc.Cert == nil:
		r.events++
	case doc.Rule != r.rule:
		r.otherHits++
	default:
		n, ok := r.plan.watchedIndex(doc.Cert.DNSNames)
		if !ok {
			r.bad = append(r.bad, fmt.Sprintf("hit of %s for names no bench entry is watched for: %.200v", r.rule, doc.Cert.DNSNames))
			break
		}
		if _, seen := r.bySHA[doc.Cert.SHA256]; !seen {
			r.bySHA[doc.Cert.SHA256] = now
		}
		if _, seen := r.byEntry[n]; !seen {
			r.byEntry[n] = now
			r.lastNew = now
			if len(r.byEntry) == r.want {
				close(r.allIn)
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// receiverStats is what the receiver saw.
type receiverStats struct {
	Distinct   int `json:"distinct_expected_hits"`
	Deliveries int `json:"deliveries"`
	OtherHits  int `json:"other_rule_hits"`
	Events     int `json:"log_events"`
	Bad        int `json:"bad_deliveries"`
}

func (r *hitReceiver) stats() (receiverStats, time.Time, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return receiverStats{
		Distinct: len(r.byEntry), Deliveries: r.deliveries, OtherHits: r.otherHits,
		Events: r.events, Bad: len(r.bad),
	}, r.lastNew, append([]string(nil), r.bad[:min(len(r.bad), 5)]...)
}

// arrivalOf returns when the hit for the certificate with hex SHA-256 sha
// first arrived.
func (r *hitReceiver) arrivalOf(sha string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.bySHA[sha]
	return t, ok
}

// webhookServer serves a receiver on a free loopback port.
type webhookServer struct {
	srv  *http.Server
	url  string
	done chan error
}

func serveWebhook(h http.Handler) (*webhookServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /hook", h)
	s := &webhookServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		url:  "http://" + l.Addr().String() + "/hook",
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(l) }()
	return s, nil
}

func (s *webhookServer) close() error {
	err := s.srv.Close()
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

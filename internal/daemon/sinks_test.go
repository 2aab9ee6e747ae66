package daemon_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctwatch/ctwatch/alerting/webhook"
	"github.com/ctwatch/ctwatch/event"
)

// outageReceiver is a signed-webhook endpoint on a fixed address that can
// answer 500, be switched off entirely (connection refused) and come back.
type outageReceiver struct {
	t      *testing.T
	addr   string
	secret []byte

	mu      sync.Mutex
	srv     *http.Server
	failing bool
	fails   int            // 500s answered
	got     map[string]int // hit id → deliveries accepted
	bad     []string       // requests that broke the contract
	changed chan struct{}
}

func newOutageReceiver(t *testing.T, secret []byte) *outageReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &outageReceiver{t: t, addr: ln.Addr().String(), secret: secret, got: map[string]int{}, changed: make(chan struct{})}
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *outageReceiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener: from now on connections are refused.
func (r *outageReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same address.
func (r *outageReceiver) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listen again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *outageReceiver) setFailing(v bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing = v
}

func (r *outageReceiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		close(r.changed)
		r.changed = make(chan struct{})
	}()
	if r.failing {
		r.fails++
		http.Error(w, "maintenance", http.StatusInternalServerError)
		return
	}
	if err := webhook.Verify(r.secret, req.Header, body, time.Now(), time.Minute); err != nil {
		r.bad = append(r.bad, "signature: "+err.Error())
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var h event.Hit
	if err := json.Unmarshal(body, &h); err != nil || h.ID == "" {
		r.bad = append(r.bad, fmt.Sprintf("body %q: %v", body, err))
		http.Error(w, "bad hit", http.StatusBadRequest)
		return
	}
	if req.Header.Get("Idempotency-Key") != h.ID || req.Header.Get("X-Ctwatch-Id") != h.ID {
		r.bad = append(r.bad, fmt.Sprintf("idempotency headers %q/%q for hit %s", req.Header.Get("Idempotency-Key"), req.Header.Get("X-Ctwatch-Id"), h.ID))
	}
	r.got[h.ID]++
}

// await waits until cond (called under the lock) holds.
func (r *outageReceiver) await(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			r.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// The outage test: the webhook receiver answers 500s, then refuses
// connections, and the daemon is restarted during the outage while the log
// grows; once the receiver is back every hit arrives, signed, none lost,
// and every repeat carries the same idempotency key.
func TestDaemonWebhookOutageLosesNothing(t *testing.T) {
	secret := "outage-test-secret"
	t.Setenv("CTWATCHTEST_HOOK_SECRET", secret)
	s := newSetup(t)
	rcv := newOutageReceiver(t, []byte(secret))
	rcv.setFailing(true)
	sinks := fmt.Sprintf(`
  - {name: file, type: jsonl, path: %s}
  - name: hook
    type: webhook
    url: http://%s/hits
    secret_env: CTWATCHTEST_HOOK_SECRET
    events: false
    retry: {min_backoff: 20ms, max_backoff: 200ms}
`, filepath.Join(s.dir, "hits.jsonl"), rcv.addr)
	jsonl := filepath.Join(s.dir, "hits.jsonl")

	s.add(t, 200)
	stop := runDaemon(t, s.configWith(t, sinks))
	awaitFile(t, jsonl, "the first hits", func(h []event.Hit) bool { return len(h) >= len(s.watched) })
	rcv.await("the receiver to fail deliveries", func() bool { return rcv.fails >= 10 })

	// The receiver goes away entirely; the daemon restarts meanwhile and
	// the log grows.
	rcv.down()
	if err := stop(); err != nil {
		t.Fatalf("daemon returned %v after cancel", err)
	}
	s.add(t, 100)
	stop = runDaemon(t, s.configWith(t, sinks))
	awaitFile(t, jsonl, "the hits after the restart", func(h []event.Hit) bool { return len(h) >= len(s.watched) })

	rcv.setFailing(false)
	rcv.up()
	want := map[string]bool{}
	for _, h := range readHits(t, jsonl) {
		want[h.ID] = true
	}
	if len(want) != len(s.watched) {
		t.Fatalf("JSONL sink has %d distinct hits, want %d", len(want), len(s.watched))
	}
	rcv.await("every hit at the webhook", func() bool { return len(rcv.got) == len(want) })
	if err := stop(); err != nil {
		t.Fatalf("daemon returned %v after cancel", err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Errorf("requests broke the contract: %v", rcv.bad[:min(len(rcv.bad), 5)])
	}
	dups := 0
	for id, n := range rcv.got {
		if !want[id] {
			t.Errorf("webhook got hit %s that the log does not have", id)
		}
		dups += n - 1
	}
	t.Logf("%d hits delivered after %d failed attempts; %d repeats, each with its hit's idempotency key", len(rcv.got), rcv.fails, dups)
}

// The burst test: a thousand hits of one rule reach Slack as one
// digest, whose link serves the full list from the daemon's web server.
func TestDaemonBurstIsOneSlackDigest(t *testing.T) {
	s := newSetup(t)
	type post struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"blocks"`
	}
	var (
		mu    sync.Mutex
		posts []post
		got   = make(chan struct{}, 1000)
	)
	slackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p post
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		mu.Lock()
		posts = append(posts, p)
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
		got <- struct{}{}
	}))
	t.Cleanup(slackSrv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	webAddr := ln.Addr().String()
	ln.Close() // the daemon listens here

	// 1,000 watched certificates (add skips every fourth name).
	s.add(t, 1333)
	if len(s.watched) != 1000 {
		t.Fatalf("set-up made %d watched certificates", len(s.watched))
	}
	cfg := s.configWith(t, fmt.Sprintf(`
  - {name: file, type: jsonl, path: %s}
  - name: chat
    type: slack
    url: %s/services/T000/B000/XXXX
    events: false
    group: {window: 1m, max_hits: 1000}
`, filepath.Join(s.dir, "hits.jsonl"), slackSrv.URL))
	cfg.Web.Listen = webAddr
	cfg.Web.ExternalURL = "http://" + webAddr
	stop := runDaemon(t, cfg)
	awaitFile(t, filepath.Join(s.dir, "hits.jsonl"), "every hit", func(h []event.Hit) bool { return len(h) >= len(s.watched) })
	select {
	case <-got:
	case <-time.After(60 * time.Second):
		t.Fatal("no Slack post")
	}
	mu.Lock()
	first := posts[0]
	mu.Unlock()
	all := first.Text
	link := ""
	for _, b := range first.Blocks {
		if b.Text != nil {
			all += "\n" + b.Text.Text
			if i := strings.Index(b.Text.Text, "http://"+webAddr+"/digests/digest-"); i >= 0 && link == "" {
				link = b.Text.Text[i:]
				link = link[:strings.IndexAny(link+"|>", "|>")]
			}
		}
	}
	if want := fmt.Sprintf("%d hits for rule", len(s.watched)); !strings.Contains(all, want) {
		t.Errorf("digest does not say %q:\n%s", want, all)
	}
	if link == "" {
		t.Fatalf("digest has no link to the full list:\n%s", all)
	}
	// The link serves the full list, as JSON and as a page.
	resp, err := http.Get(link + "?format=json")
	if err != nil {
		t.Fatal(err)
	}
	var d event.Digest
	err = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if err != nil || d.Count != len(s.watched) || len(d.Hits) != len(s.watched) {
		t.Errorf("digest page JSON: count %d, %d hits, err %v; want %d", d.Count, len(d.Hits), err, len(s.watched))
	}
	for _, h := range d.Hits {
		if _, ok := s.watched[h.Cert.SHA256]; !ok {
			t.Errorf("digest lists a certificate that is not watched: %s", h.Cert.SHA256)
		}
	}
	resp, err = http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), d.Hits[len(d.Hits)-1].Cert.DNSNames[0]) {
		t.Errorf("digest page: status %d, does not list the last hit's name", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) != 1 {
		t.Fatalf("%d Slack posts, want one digest", len(posts))
	}
}

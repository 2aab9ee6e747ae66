package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func TestFetchErrorKind(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("get x: %w", &httpError{Status: 429}), "rate_limited"},
		{fmt.Errorf("get x: %w", &httpError{Status: 502}), "http_5xx"},
		{fmt.Errorf("get x: %w", &httpError{Status: 404}), "http_4xx"},
		{fmt.Errorf("get x: %w (16 bytes)", errTooLarge), "too_large"},
		{fmt.Errorf("get x: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("decode get-sth response: %w", json.Unmarshal([]byte("{"), new(any))), "decode"},
		{errors.New("connection refused"), "network"},
	}
	for _, tc := range tests {
		if got := FetchErrorKind(tc.err); got != tc.want {
			t.Errorf("FetchErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// readBody must return exactly the body, whatever Content-Length claims and
// whatever buffer it is handed, and refuse a body over the limit however it
// is framed: a log's Content-Length is only a hint for sizing.
func TestReadBody(t *testing.T) {
	const limit = 64
	body := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	tests := []struct {
		name          string
		body          []byte
		contentLength int64
		buf           []byte
		tooLarge      bool
	}{
		{"empty", nil, 0, nil, false},
		{"unknown length", body(50), -1, nil, false},
		{"exact length", body(50), 50, nil, false},
		{"at the limit", body(limit), limit, nil, false},
		{"one over the limit", body(limit + 1), limit + 1, nil, true},
		{"over the limit, length unknown", body(3 * limit), -1, nil, true},
		{"length claims less", body(60), 10, nil, false},
		{"length claims more", body(10), 60, nil, false},
		{"length claims less, body over the limit", body(2 * limit), 10, nil, true},
		{"length claims far more than the limit", body(10), 1 << 40, nil, false},
		{"reused buffer with old bytes", body(20), 20, []byte("stale stale stale stale stale stale"), false},
		{"reused buffer too small", body(50), 50, make([]byte, 0, 8), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readBody(bytes.NewReader(tc.body), tc.contentLength, limit, tc.buf[:0])
			if tc.tooLarge {
				if !errors.Is(err, errTooLarge) {
					t.Fatalf("err = %v, want errTooLarge", err)
				}
				if len(got) > limit+1 {
					t.Errorf("read %d bytes of an oversized body, want at most %d", len(got), limit+1)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.body) {
				t.Errorf("read %q, want %q", got, tc.body)
			}
		})
	}
}

// A recycled buffer is handed to the next read, and buffers too big to
// keep are not. (sync.Pool may drop what it is given, and does so at
// random under the race detector, so the first part tries a few times.)
func TestFetcherRecyclesBodies(t *testing.T) {
	f := newFetcher("http://127.0.0.1", nil, DefaultFetchOptions())
	reused := false
	for range 50 {
		f.recycle(make([]byte, 10, 1024))
		if b, ok := f.bodies.Get().(*[]byte); ok {
			if cap(*b) != 1024 || len(*b) != 0 {
				t.Fatalf("pool gave a buffer of len %d cap %d, want the recycled 1 KiB one, emptied", len(*b), cap(*b))
			}
			reused = true
			break
		}
	}
	if !reused {
		t.Error("a recycled buffer never came back from the pool")
	}
	for range 50 {
		f.recycle(make([]byte, 0, maxRecycled+1))
		if b, ok := f.bodies.Get().(*[]byte); ok {
			t.Fatalf("pool kept a buffer of %d bytes, over maxRecycled", cap(*b))
		}
	}
}

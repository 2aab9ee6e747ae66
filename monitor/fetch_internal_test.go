package monitor

import (
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

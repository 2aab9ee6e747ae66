package alerting_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/alerting"
)

func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"deadline", fmt.Errorf("open stream: %w", context.DeadlineExceeded), true},
		{"timeout", nats.ErrTimeout, true},
		{"no responders", fmt.Errorf("x: %w", nats.ErrNoResponders), true},
		{"no stream response", fmt.Errorf("publish: %w", jetstream.ErrNoStreamResponse), true},
		{"reconnecting", nats.ErrConnectionReconnecting, true},
		{"unavailable", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "jetstream temporarily unavailable"}, true},
		{"jetstream not enabled", fmt.Errorf("open: %w", jetstream.ErrJetStreamNotEnabled), false},
		{"insufficient resources", fmt.Errorf("open: %w", &jetstream.APIError{Code: 500, ErrorCode: 10023, Description: "insufficient resources"}), false},
		{"bad request", &jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use"}, false},
		{"authorization", errors.New("nats: authorization violation"), false},
		{"canceled", context.Canceled, false},
	}
	for _, tc := range tests {
		if got := alerting.Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

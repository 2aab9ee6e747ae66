package alerting

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Transient reports whether err, from a NATS or JetStream call, is likely
// to pass by itself: a timeout, no responders or no stream response while
// a cluster elects a leader or a server restarts, a connection that is
// reconnecting, JetStream answering "temporarily unavailable". Callers
// retry those with backoff and give up on the rest (a refused request, a
// bad configuration such as more replicas than servers), which retrying
// cannot fix.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		// 503: JetStream (or the stream's leader) is not available now;
		// but a server without JetStream will not grow it by waiting.
		return apiErr.Code == 503 && apiErr.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabled &&
			apiErr.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabledForAccount
	}
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting)
}

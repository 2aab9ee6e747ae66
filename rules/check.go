package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/ctwatch/ctwatch/cert"
)

// CheckInput is one file (or standard input) handed to `ctwatch check`.
type CheckInput struct {
	// Name identifies the input in output and errors ("cert.pem", "-").
	Name string
	// Data is PEM (one or more CERTIFICATE blocks) or a single DER
	// certificate.
	Data []byte
}

// Check runs the rules of e over every certificate in inputs and writes one
// line per hit to w: with asJSON, the event.Hit JSON (without "log", as the
// certificates did not come from a log); otherwise
// "NAME: severity rule: reason", where NAME is the input's name, followed by
// "#N" (1-based) when the input holds more than one certificate.
//
// An input or certificate that cannot be read does not stop the others:
// Check goes on and returns, with the number of hits written, the errors
// joined, each naming its input. A write error or a cancelled ctx stops it.
func Check(ctx context.Context, e *Engine, inputs []CheckInput, w io.Writer, asJSON bool) (hits int, err error) {
	var errs []error
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, in := range inputs {
		ders, err := cert.SplitPEMOrDER(in.Data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", in.Name, err))
			continue
		}
		for i, der := range ders {
			if err := ctx.Err(); err != nil {
				return hits, errors.Join(append(errs, err)...)
			}
			label := in.Name
			if len(ders) > 1 {
				label = fmt.Sprintf("%s#%d", in.Name, i+1)
			}
			c, err := cert.Parse(der)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", label, err))
				continue
			}
			for _, m := range e.Match(c) {
				if asJSON {
					err = enc.Encode(e.NewHit(m, c, nil))
				} else {
					_, err = fmt.Fprintf(w, "%s: %s %s: %s\n", label, m.Severity, m.Rule, m.Reason)
				}
				if err != nil {
					return hits, errors.Join(append(errs, fmt.Errorf("write result: %w", err))...)
				}
				hits++
			}
		}
	}
	return hits, errors.Join(errs...)
}

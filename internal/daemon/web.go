package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
)

// digestReader is what the web server needs of the digest archive.
type digestReader interface {
	// Get returns the digest stored under id, or an error wrapping
	// alerting.ErrNoDigest when there is none.
	Get(ctx context.Context, id string) (*event.Digest, error)
}

// webHandler is everything the daemon serves on web.listen. Each feature
// registers its routes in its own function, so that they can be read (and
// tested) apart.
func (p *process) webHandler() http.Handler {
	mux := http.NewServeMux()
	if p.archive != nil {
		registerDigestRoutes(mux, p.archive, p.logger)
	}
	registerMetricsRoutes(mux, p)
	registerHealthRoutes(mux, p)
	registerStatusRoutes(mux, p)
	registerPprofRoutes(mux, p)
	return securityHeaders(mux)
}

// registerDigestRoutes serves the pages ctwatch links to from its alerts:
// the full hit list behind a digest, as HTML or (with ?format=json or an
// Accept header asking for JSON) as the digest's JSON document.
func registerDigestRoutes(mux *http.ServeMux, digests digestReader, logger *slog.Logger) {
	mux.HandleFunc("GET /digests/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, err := digests.Get(r.Context(), r.PathValue("id"))
		if errors.Is(err, alerting.ErrNoDigest) {
			http.Error(w, "no such digest (digests expire with the hit stream)", http.StatusNotFound)
			return
		}
		if err != nil {
			logger.Warn("web: read digest", "id", r.PathValue("id"), "err", err)
			http.Error(w, "cannot read the digest", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(d)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := digestPage.Execute(w, d); err != nil {
			logger.Debug("web: write digest page", "err", err)
		}
	})
}

// securityHeaders keeps pages that show attacker-chosen text (certificate
// names) from running anything or being framed.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// digestPage renders a digest; html/template escapes every certificate
// field.
var digestPage = template.Must(template.New("digest").Funcs(template.FuncMap{
	"crtsh": alerting.CrtshURL,
	"time":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":  func(s []string) string { return strings.Join(s, ", ") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ctwatch digest {{.Rule}}: {{.Count}} hits</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}</style>
</head><body>
<h1>{{.Count}} hits for rule <code>{{.Rule}}</code></h1>
<p>Severity <strong>{{.Severity}}</strong>, published {{time .First}} to {{time .Last}}. Digest <code>{{.ID}}</code>.</p>
<table><thead><tr><th>#</th><th>Names</th><th>Issuer</th><th>Validity</th><th>Log</th><th>Reason</th><th>Certificate</th></tr></thead><tbody>
{{range $i, $h := .Hits}}<tr><td>{{$i}}</td><td>{{join $h.Cert.DNSNames}}</td><td>{{$h.Cert.Issuer}}</td><td>{{time $h.Cert.NotBefore}} – {{time $h.Cert.NotAfter}}</td><td>{{with $h.Log}}{{.Name}} #{{.Index}}{{end}}</td><td>{{$h.Reason}}</td><td><a href="{{crtsh $h.Cert.SHA256}}">crt.sh</a> <code>{{$h.ID}}</code></td></tr>
{{end}}</tbody></table>
</body></html>
`))

// serveWeb listens on addr and serves h until the returned stop function
// is called. The listener is opened before serveWeb returns, so a port in
// use is a start-up error; the address returned is the listener's own,
// which tells the port when addr asked for port 0.
func serveWeb(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) (stop func(), listening net.Addr, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("web listener %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("web server stopped", "err", err)
		}
	}()
	logger.Info("web server listening", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, ln.Addr(), nil
}

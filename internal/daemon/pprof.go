package daemon

import (
	"net/http"
	"net/http/pprof"
)

// registerPprofRoutes serves Go's profiler under /debug/pprof/ when
// web.pprof is true at start: the way to see where a running daemon
// spends its CPU or memory (issue 8's profiling was done this way against
// real logs). Off by default, since profiles reveal code paths and
// timings. The web server's write timeout (60 s) bounds a CPU profile's
// seconds parameter.
func registerPprofRoutes(mux *http.ServeMux, p *process) {
	if !p.config().Web.Pprof {
		return
	}
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

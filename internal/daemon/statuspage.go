package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctwatch/ctwatch/alerting"
	"github.com/ctwatch/ctwatch/event"
	"github.com/ctwatch/ctwatch/internal/config"
)

// statusTimeout bounds the making of one report: the page must answer
// while NATS is slow or away, showing what it has and saying what it lacks.
const statusTimeout = 5 * time.Second

// misbehaved reports whether a log raised an event that no honest log
// causes (a bad signature, a fork, a shrinking tree).
func misbehaved(events map[event.LogEventKind]uint64) bool {
	return events[event.BadSignature]+events[event.InconsistentTree]+events[event.ShrinkingTree] > 0
}

// registerStatusRoutes serves the status page at / and /status, and the
// same report as JSON at /api/status (what `ctwatch status` reads), unless
// web.status_page is false at start (like every web setting, it takes
// effect at the next start). Query parameters rule, severity (minimum),
// name (substring) and limit select the recent hits.
func registerStatusRoutes(mux *http.ServeMux, p *process) {
	if !p.config().Web.StatusPage {
		return
	}
	page := func(w http.ResponseWriter, r *http.Request) {
		var data statusPageData
		f, err := ParseHitFilter(r.URL.Query().Get)
		if err != nil {
			// Show the page unfiltered rather than an error page: the
			// form is right there to fix the value.
			data.FilterError = err.Error()
			f = HitFilter{Limit: DefaultHitLimit}
		}
		data.Form = r.URL.Query()
		data.Report = p.report(r.Context(), f)
		data.Now = time.Now()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := statusPage.Execute(w, data); err != nil {
			p.logger.Debug("web: write status page", "err", err)
		}
	}
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /status", page)
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseHitFilter(r.URL.Query().Get)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(p.report(r.Context(), f)); err != nil {
			p.logger.Debug("web: write status", "err", err)
		}
	})
}

// report gathers what the status page and /api/status show. It never
// fails: a part it cannot read (NATS away) carries an error text instead,
// and the whole takes at most statusTimeout. Safe for concurrent use.
func (p *process) report(ctx context.Context, f HitFilter) *StatusReport {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	rep := &StatusReport{
		Live:    true,
		Time:    time.Now(),
		Version: readBuild().String(),
		Started: p.started,
		NATS:    p.nc.Status().String(),
		Logs:    []LogStatus{},
		Hits:    &HitsReport{Filter: f, Recent: []RecentHit{}},
	}
	// An in-process connection reports a URL nothing listens on.
	rep.NATSServer = "embedded"
	if p.config().NATS.URL != "" {
		rep.NATSServer = p.nc.ConnectedUrlRedacted()
	}
	for _, ts := range p.sup.snapshot() {
		rep.Logs = append(rep.Logs, liveLogStatus(ts))
	}
	for _, r := range p.matcher.Engine().Rules() {
		rep.Rules = append(rep.Rules, RuleStatus{Name: r.Name, Severity: r.Severity, Description: r.Description, Tags: r.Tags, File: r.File, Line: r.Line})
	}
	if rs := p.lastReload.Load(); rs != nil {
		rep.LastReload = &ReloadReport{Time: rs.Time, Error: rs.Err}
	}
	sinks := p.sinks.current()
	rep.Sinks = make([]SinkStatus, len(sinks))
	for i, s := range sinks {
		rep.Sinks[i] = SinkStatus{Name: s.Name, Type: s.Type, Route: RouteSummary(s.Route), Events: s.Events, Rate: s.Rate}
		if s.Group.Window > 0 {
			rep.Sinks[i].GroupWindow = s.Group.Window.String()
		}
	}

	fail := func(err error) *StatusReport {
		rep.Hits.Error = err.Error()
		for i := range rep.Sinks {
			rep.Sinks[i].Error = err.Error()
		}
		return rep
	}
	if !p.nc.IsConnected() {
		return fail(fmt.Errorf("NATS is %s", rep.NATS))
	}
	js := p.bus.JetStream()
	stream, err := js.Stream(ctx, alerting.StreamName)
	if err != nil {
		return fail(fmt.Errorf("stream %s: %w", alerting.StreamName, err))
	}
	// One request counts the messages of every subject: hits by
	// severity and dead letters by sink.
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("ctwatch.>"))
	if err != nil {
		return fail(fmt.Errorf("stream %s: %w", alerting.StreamName, err))
	}
	rep.Hits.Stored = map[event.Severity]uint64{}
	dead := map[string]uint64{}
	for subj, n := range info.State.Subjects {
		if sev, ok := strings.CutPrefix(subj, alerting.HitSubjectPrefix); ok {
			rep.Hits.Stored[event.Severity(sev)] += n
		} else if sink, ok := strings.CutPrefix(subj, alerting.DeadSubjectPrefix); ok {
			dead[sink] += n
		}
	}
	for i := range rep.Sinks {
		s := &rep.Sinks[i]
		s.DeadLetters = dead[s.Name]
		n, err := pending(ctx, p.bus, s.Name)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			s.Error = err.Error()
		}
		s.Pending = n
	}
	hits, searched, truncated, err := recentHits(ctx, js, info.State.FirstSeq, info.State.LastSeq, f, maxHitsSearched)
	rep.Hits.Recent = append(rep.Hits.Recent, hits...)
	rep.Hits.Searched, rep.Hits.Truncated = searched, truncated
	if err != nil {
		rep.Hits.Error = err.Error()
	}
	return rep
}

// liveLogStatus is a running tailer's log as the report shows it.
func liveLogStatus(ts tailerStatus) LogStatus {
	st := ts.Stats
	ls := LogStatus{
		Name:          ts.Log.Name,
		Kind:          ts.Log.Kind,
		URL:           ts.Log.URL,
		HasPosition:   st.TreeSize > 0 || st.NextIndex > 0 || !st.LastHead.IsZero(),
		TreeSize:      st.TreeSize,
		NextIndex:     st.NextIndex,
		Lag:           st.TreeSize - min(st.NextIndex, st.TreeSize),
		BehindSince:   st.BehindSince,
		LastHead:      st.LastHead,
		LastCommit:    st.LastCommit,
		LastError:     st.LastError,
		LastErrorTime: st.LastErrorTime,
		Processed:     st.Processed,
		Hits:          st.Hits,
		Malformed:     st.Malformed,
		Events:        st.Events,
		FetchErrors:   st.FetchErrors,
	}
	switch {
	case misbehaved(st.Events):
		ls.State = LogMisbehaving
	case st.Unreachable:
		ls.State = LogUnreachable
	case st.LastHead.IsZero():
		ls.State = LogStarting
	case ls.Lag > 0:
		ls.State = LogBehind
	default:
		ls.State = LogCaughtUp
	}
	return ls
}

// RouteSummary says in one line what a sink's route takes: "all", or its
// conditions such as ">=high rules=a,b domains=example.com".
func RouteSummary(r config.Route) string {
	var parts []string
	if r.MinSeverity != "" {
		parts = append(parts, ">="+r.MinSeverity)
	}
	for _, f := range []struct {
		name string
		vals []string
	}{{"rules", r.Rules}, {"tags", r.Tags}, {"domains", r.Domains}, {"events", r.Events}} {
		if len(f.vals) > 0 {
			parts = append(parts, f.name+"="+strings.Join(f.vals, ","))
		}
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

// build is what the status page and the build-info metric say of the
// running binary.
type build struct {
	// Version is the module version, "(devel)" for a source build.
	Version string
	// Revision is the first 12 hex digits of the VCS revision, "" when
	// the build did not record one.
	Revision string
	// GoVersion is the toolchain, e.g. "go1.26.8"; "" when unknown.
	GoVersion string
}

// readBuild reads the running binary's build information.
func readBuild() build {
	b := build{Version: "(devel)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	b.GoVersion = bi.GoVersion
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			b.Revision = s.Value[:12]
		}
	}
	return b
}

// String names the build in one line: version, revision, Go version.
func (b build) String() string {
	return strings.Join(slices.DeleteFunc([]string{b.Version, b.Revision, b.GoVersion}, func(s string) bool { return s == "" }), " ")
}

// statusPageData is what the status page template reads.
type statusPageData struct {
	Report *StatusReport
	Now    time.Time
	// Form holds the request's parameters, to fill the filter form in.
	Form map[string][]string
	// FilterError is why the filter could not be used, "" when it could.
	FilterError string
}

// shownNames is how many DNS names a hit row lists before "+N more".
const shownNames = 3

// statusPage renders a report. html/template escapes every value, and
// certificate fields (names, issuer, reason) are attacker-chosen: nothing
// here marks a value as safe.
var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"crtsh": alerting.CrtshURL,
	"when": func(now, t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05") + " UTC (" + ago(now, t) + ")"
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"ago":   ago,
	"dur":   roundDuration,
	"num":   func(n uint64) string { return GroupDigits(n) },
	"pct":   func(l LogStatus) string { return strconv.FormatFloat(100*l.Progress(), 'f', 1, 64) + "%" },
	"names": func(names []string) string {
		if len(names) <= shownNames {
			return strings.Join(names, ", ")
		}
		return fmt.Sprintf("%s +%d more", strings.Join(names[:shownNames], ", "), len(names)-shownNames)
	},
	"join":       func(s []string) string { return strings.Join(s, ", ") },
	"first":      func(v []string) string { return firstOf(v) },
	"severities": severities,
	"stateCount": func(logs []LogStatus) string {
		counts := map[LogState]int{}
		for _, l := range logs {
			counts[l.State]++
		}
		var parts []string
		for _, s := range []LogState{LogCaughtUp, LogBehind, LogStarting, LogUnreachable, LogMisbehaving} {
			if counts[s] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", counts[s], s.Label()))
			}
		}
		return strings.Join(parts, ", ")
	},
}).Parse(statusTemplate))

// firstOf returns the first value of a form field, "" when absent.
func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// ago says how long before now t was, coarsely ("3m ago", "in 2s" for a
// clock skewed ahead).
func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + roundDuration(-d)
	}
	return roundDuration(d) + " ago"
}

// roundDuration shows a duration to the second below an hour, to the
// minute below a day, and in days and hours beyond.
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 24*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	default:
		days := int(d / (24 * time.Hour))
		return fmt.Sprintf("%dd%dh", days, int((d%(24*time.Hour))/time.Hour))
	}
}

// GroupDigits writes n with a comma between groups of three digits
// (1,234,567), as the status page and `ctwatch status` show counts.
func GroupDigits(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

const statusTemplate = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ctwatch status</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;line-height:1.35}
h1{margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;font-size:.92em}
td,th{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:nth-child(even) td{background:#fafafa}
code{font-size:.9em;word-break:break-all}
td.t{white-space:nowrap}.muted{color:#666}.err{color:#a00}.small{font-size:.85em}
.state,.sev{display:inline-block;padding:0 .4em;border-radius:.3em;white-space:nowrap}
.state-caught_up{background:#dfd}.state-behind{background:#ffe9b3}.state-starting{background:#e6e6e6}
.state-unreachable{background:#fcc}.state-misbehaving{background:#c00;color:#fff}
.sev-info{background:#e6e6e6}.sev-low{background:#dfefff}.sev-medium{background:#ffe9b3}
.sev-high{background:#fcc}.sev-critical{background:#c00;color:#fff}
progress{width:9em;vertical-align:middle}
form{margin:.6em 0;display:flex;flex-wrap:wrap;gap:.6em;align-items:end}
label{display:flex;flex-direction:column;font-size:.85em}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.15em 1em;margin:.5em 0}
dl.facts dt{color:#666}dl.facts dd{margin:0}
</style>
</head><body>
{{- $now := .Now}}{{with .Report}}
<h1>ctwatch status</h1>
<dl class="facts">
<dt>Version</dt><dd>{{.Version}}</dd>
<dt>Up since</dt><dd>{{when $now .Started}}</dd>
<dt>NATS</dt><dd>{{.NATS}}{{with .NATSServer}} <span class="muted">{{.}}</span>{{end}}</dd>
<dt>Last reload</dt><dd>{{with .LastReload}}{{when $now .Time}}{{if .Error}} <span class="err">refused: {{.Error}}</span>{{else}} ok{{end}}{{else}}none since start{{end}}</dd>
<dt>Report made</dt><dd>{{when $now .Time}}</dd>
</dl>

<h2 id="logs">Logs</h2>
<p>{{len .Logs}} followed{{with stateCount .Logs}}: {{.}}{{end}}. {{num .HitsSinceStart}} hits published by this process since it started.</p>
<table><thead><tr><th>Name</th><th>Kind</th><th>State</th><th>Tree size</th><th>Next index</th><th>Lag</th><th>Last head</th><th>Last error</th><th>Hits</th><th>Malformed</th><th>URL</th></tr></thead><tbody>
{{range .Logs}}<tr>
<td>{{.Name}}</td><td>{{.Kind}}</td>
<td><span class="state state-{{.State}}">{{.State.Label}}</span></td>
<td class="n">{{if .HasPosition}}{{num .TreeSize}}{{else}}—{{end}}</td>
<td class="n">{{if .HasPosition}}{{num .NextIndex}}{{else}}—{{end}}</td>
<td class="n">{{if .Behind}}{{num .Lag}} entries{{with .LagTime $now}}, {{dur .}}{{end}}<br><progress value="{{.NextIndex}}" max="{{.TreeSize}}">{{pct .}}</progress> {{pct .}}{{else if .HasPosition}}0{{else}}—{{end}}</td>
<td class="small">{{when $now .LastHead}}</td>
<td class="small">{{if .LastError}}<span class="err">{{.LastError}}</span><br><span class="muted">{{when $now .LastErrorTime}}</span>{{else}}—{{end}}</td>
<td class="n">{{num .Hits}}</td><td class="n">{{num .Malformed}}</td>
<td class="small"><code>{{.URL}}</code></td>
</tr>
{{else}}<tr><td colspan="11">No logs are followed.</td></tr>
{{end}}</tbody></table>

<h2 id="hits">Recent hits</h2>
{{with .Hits}}
<form method="get" action="#hits">
<label>Rule<input name="rule" list="rule-names" value="{{first ($.Form.rule)}}"></label>
<label>Minimum severity<select name="severity"><option value="">any</option>{{$sev := first ($.Form.severity)}}{{range severities}}<option{{if eq (print .) $sev}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>Name contains<input name="name" value="{{first ($.Form.name)}}"></label>
<label>Show at most<input name="limit" type="number" min="0" max="5000" value="{{.Filter.Limit}}"></label>
<button type="submit">Filter</button> <a href="?#hits">clear</a>
</form>
{{if $.FilterError}}<p class="err">Filter not applied: {{$.FilterError}}</p>{{end}}
{{if .Error}}<p class="err">Hits could not be read in full: {{.Error}}</p>{{end}}
<p class="muted">{{len .Recent}} shown, newest first; {{num .StoredTotal}} stored in the stream (every ctwatch process's){{if .Truncated}}; the search stopped after the newest {{.Searched}} hits, so older matches may exist: narrow the filter{{end}}.</p>
<table><thead><tr><th>Published (UTC)</th><th>Severity</th><th>Rule</th><th>Names</th><th>Issuer</th><th>Log / index</th><th>Reason</th><th>Certificate</th></tr></thead><tbody>
{{range .Recent}}<tr class="hit">
<td class="small t">{{stamp .Published}}<br><span class="muted">{{ago $now .Published}}</span></td>
<td><span class="sev sev-{{.Severity}}">{{.Severity}}</span></td>
<td>{{.Rule}}</td>
<td>{{names .Cert.DNSNames}}</td>
<td class="small">{{.Cert.Issuer}}</td>
<td class="small">{{with .Log}}{{.Name}} #{{.Index}}{{else}}—{{end}}</td>
<td class="small">{{.Reason}}</td>
<td class="small"><a href="{{crtsh .Cert.SHA256}}" rel="noreferrer">crt.sh</a><br><code class="hit-id">{{.ID}}</code></td>
</tr>
{{else}}<tr><td colspan="8">No hits{{if or .Filter.Rule .Filter.MinSeverity .Filter.Name}} match the filter{{end}}.</td></tr>
{{end}}</tbody></table>
{{end}}
<datalist id="rule-names">{{range .Rules}}<option value="{{.Name}}">{{end}}</datalist>

<h2 id="rules">Rules</h2>
<p>{{len .Rules}} loaded.</p>
<table><thead><tr><th>Name</th><th>Severity</th><th>Tags</th><th>Description</th><th>Defined at</th></tr></thead><tbody>
{{range .Rules}}<tr><td>{{.Name}}</td><td><span class="sev sev-{{.Severity}}">{{.Severity}}</span></td><td>{{join .Tags}}</td><td>{{.Description}}</td><td class="small"><code>{{.File}}:{{.Line}}</code></td></tr>
{{else}}<tr><td colspan="5">No rules: logs are followed and verified, but nothing alerts.</td></tr>
{{end}}</tbody></table>

<h2 id="sinks">Sinks</h2>
<table><thead><tr><th>Name</th><th>Type</th><th>Takes</th><th>Events</th><th>Group window</th><th>Rate</th><th>Pending</th><th>Dead letters</th></tr></thead><tbody>
{{range .Sinks}}<tr><td>{{.Name}}</td><td>{{.Type}}</td><td>{{.Route}}</td><td>{{if .Events}}yes{{else}}no{{end}}</td><td>{{or .GroupWindow "—"}}</td><td>{{if .Rate}}{{.Rate}}/s{{else}}unlimited{{end}}</td>
<td class="n">{{num .Pending}}</td><td class="n">{{num .DeadLetters}}</td></tr>
{{if .Error}}<tr><td colspan="8" class="err small">{{.Name}}: {{.Error}}</td></tr>{{end}}
{{else}}<tr><td colspan="8">No sinks: hits are stored in the stream only.</td></tr>
{{end}}</tbody></table>
<p class="muted small">The same report as JSON: <a href="api/status">/api/status</a>.</p>
{{end}}
</body></html>
`

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// results is everything one harness run measured; its JSON form is the
// -json file.
type results struct {
	Started  time.Time         `json:"started"`
	Machine  machine           `json:"machine"`
	Command  string            `json:"command"`
	Settings map[string]string `json:"settings"`

	RFC6962 []*backfillResult `json:"rfc6962,omitempty"` // ctwatch, certspotter
	Ratios  *ratios           `json:"ratios,omitempty"`
	Static  *backfillResult   `json:"static,omitempty"`
	Latency []latencyResult   `json:"latency,omitempty"`
	Targets []target          `json:"targets"`
}

// ratios are ctwatch's figures over certspotter's on the same log.
type ratios struct {
	EntriesPerSecond  float64 `json:"entries_per_second"`
	CPUSecondsPer100k float64 `json:"cpu_seconds_per_100k"`
	PeakRSS           float64 `json:"peak_rss"`
}

// target is one of the targets next to the figure measured.
type target struct {
	Name   string `json:"name"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
	Caveat string `json:"caveat,omitempty"`
}

// machine says where the figures were taken.
type machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryMB  int    `json:"memory_mb"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	LoadAvg   string `json:"load_average_at_start"`
}

func readMachine() machine {
	m := machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if kb, err := statusKB(string(data), "MemTotal"); err == nil {
			m.MemoryMB = int(kb / 1024)
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(data))
		m.LoadAvg = strings.Join(f[:min(3, len(f))], " ")
	}
	return m
}

// computeTargets compares the figures with the targets.
func (r *results) computeTargets(poll time.Duration) {
	r.Targets = nil
	if r.Ratios != nil {
		r.Targets = append(r.Targets, target{
			Name: "CPU per entry vs certspotter (RFC 6962)", Want: "≤ 0.33×",
			Got: fmt.Sprintf("%.2f×", r.Ratios.CPUSecondsPer100k), Met: r.Ratios.CPUSecondsPer100k <= 1.0/3,
		})
	}
	if r.Static != nil {
		r.Targets = append(r.Targets, target{
			Name: "static-ct-api backfill", Want: "≥ 50,000 entries/s",
			Got: fmt.Sprintf("%.0f entries/s", r.Static.EntriesPerSecond), Met: r.Static.EntriesPerSecond >= 50000,
		})
		t := target{
			Name: "peak RSS during a static backfill", Want: "< 150 MB",
			Got: fmt.Sprintf("%.0f MB (%d entries)", r.Static.PeakRSSMB, r.Static.Entries), Met: r.Static.PeakRSSMB < 150,
		}
		if r.Static.Entries < 1000000 {
			t.Caveat = "the issue's target is for a 1,000,000-entry backfill"
		}
		r.Targets = append(r.Targets, t)
	}
	if len(r.RFC6962) > 0 {
		c := r.RFC6962[0]
		r.Targets = append(r.Targets, target{
			Name: "peak RSS during the RFC 6962 backfill", Want: "< 150 MB",
			Got: fmt.Sprintf("%.0f MB (%d entries)", c.PeakRSSMB, c.Entries), Met: c.PeakRSSMB < 150,
		})
	}
	for _, l := range r.Latency {
		t := target{
			Name: "p99 tree head → webhook, " + l.Log, Want: fmt.Sprintf("< poll + 500 ms = %.0f ms", ms(poll)+500),
			Got: fmt.Sprintf("%.0f ms (poll + %.0f ms)", l.P99MS, l.P99OverPollMS),
			Met: l.P99OverPollMS < 500 && l.Missing == 0 && l.Delivered > 0,
		}
		if l.Missing > 0 {
			t.Caveat = fmt.Sprintf("%d certificates never arrived", l.Missing)
		}
		r.Targets = append(r.Targets, t)
	}
}

// printTable writes the human summary.
func (r *results) printTable(w io.Writer) {
	fmt.Fprintf(w, "\n== ctwatch benchmark, %s\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %s, %d cores, %d MB, Linux %s, %s, load average at start %s\n",
		r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryMB, r.Machine.Kernel, r.Machine.GoVersion, r.Machine.LoadAvg)
	fmt.Fprintf(w, "command: %s\n", r.Command)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(r.RFC6962) > 0 {
		fmt.Fprintf(w, "\nPhase A: RFC 6962 backfill (Trillian v1.7.3 + CTFE v1.4.0), %d entries, same log, one after the other\n", r.RFC6962[0].Entries)
		fmt.Fprintf(tw, "\tctwatch\t")
		if len(r.RFC6962) > 1 {
			fmt.Fprintf(tw, "certspotter\tctwatch/certspotter\t")
		}
		fmt.Fprintln(tw)
		row := func(name string, f func(*backfillResult) float64, format string, ratio float64) {
			fmt.Fprintf(tw, "%s\t"+format+"\t", name, f(r.RFC6962[0]))
			if len(r.RFC6962) > 1 {
				fmt.Fprintf(tw, format+"\t%.2f×\t", f(r.RFC6962[1]), ratio)
			}
			fmt.Fprintln(tw)
		}
		rt := r.Ratios
		if rt == nil {
			rt = &ratios{}
		}
		row("entries/s", func(b *backfillResult) float64 { return b.EntriesPerSecond }, "%.0f", rt.EntriesPerSecond)
		row("CPU s / 100k entries", func(b *backfillResult) float64 { return b.CPUSecondsPer100k }, "%.2f", rt.CPUSecondsPer100k)
		row("peak RSS (MB)", func(b *backfillResult) float64 { return b.PeakRSSMB }, "%.1f", rt.PeakRSS)
		row("wall time (s)", func(b *backfillResult) float64 { return b.WallSeconds }, "%.2f", r.RFC6962[0].WallSeconds/nonZero(r.RFC6962[len(r.RFC6962)-1].WallSeconds))
		row("CPU time (s)", func(b *backfillResult) float64 { return b.CPUSeconds }, "%.2f", r.RFC6962[0].CPUSeconds/nonZero(r.RFC6962[len(r.RFC6962)-1].CPUSeconds))
		tw.Flush()
		for _, b := range r.RFC6962 {
			fmt.Fprintf(w, "  %s: %d of %d expected hits", b.Tool, b.HitsFound, b.HitsExpected)
			if b.Webhook != nil && b.Webhook.OtherHits > 0 {
				fmt.Fprintf(w, " (and %d hits of the other example rules)", b.Webhook.OtherHits)
			}
			if b.HitsSeconds > 0 {
				fmt.Fprintf(w, ", all at the webhook %.2f s after start", b.HitsSeconds)
			}
			if b.PollCPUPerSecond > 0 {
				fmt.Fprintf(w, "; idle with a /metrics scrape every 250 ms it uses %.3f CPU s/s", b.PollCPUPerSecond)
			}
			fmt.Fprintln(w)
		}
	}
	if s := r.Static; s != nil {
		fmt.Fprintf(w, "\nPhase B: static-ct-api backfill (TesseraCT v0.1.1 tiles served by staticserve), %d entries\n", s.Entries)
		fmt.Fprintf(tw, "entries/s\t%.0f\t\n", s.EntriesPerSecond)
		fmt.Fprintf(tw, "CPU s / 100k entries\t%.2f\t\n", s.CPUSecondsPer100k)
		fmt.Fprintf(tw, "peak RSS (MB)\t%.1f\t\n", s.PeakRSSMB)
		fmt.Fprintf(tw, "wall time (s)\t%.2f\t\n", s.WallSeconds)
		tw.Flush()
		fmt.Fprintf(w, "  RSS by progress:")
		for _, p := range s.RSSByProgress {
			fmt.Fprintf(w, "  %.0f%%: %.1f MB (peak so far %.1f)", p.Progress*100, p.RSSMB, p.PeakSoFar)
		}
		fmt.Fprintf(w, "\n  %d of %d expected hits", s.HitsFound, s.HitsExpected)
		if s.HitsSeconds > 0 {
			fmt.Fprintf(w, ", all at the webhook %.2f s after start", s.HitsSeconds)
		}
		fmt.Fprintln(w)
	}
	if len(r.Latency) > 0 {
		fmt.Fprintf(w, "\nPhase C: latency from first appearance in a tree head to the webhook (one ctwatch, poll %s)\n", r.Settings["poll"])
		fmt.Fprintf(tw, "log\tcerts\tdelivered\tp50 ms\tp99 ms\tmax ms\tp99 − poll ms\t\n")
		for _, l := range r.Latency {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t\n", l.Log, l.Submitted, l.Delivered, l.P50MS, l.P99MS, l.MaxMS, l.P99OverPollMS)
		}
		tw.Flush()
	}
	if len(r.Targets) > 0 {
		fmt.Fprintf(w, "\nTargets (issue 8):\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range r.Targets {
			verdict := "MET"
			if !t.Met {
				verdict = "not met"
			}
			fmt.Fprintf(tw, "  %s\twant %s\tgot %s\t%s", t.Name, t.Want, t.Got, verdict)
			if t.Caveat != "" {
				fmt.Fprintf(tw, " (%s)", t.Caveat)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
}

func nonZero(f float64) float64 {
	if f == 0 {
		return 1
	}
	return f
}

// writeJSON writes the results to path.
func (r *results) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

package main

import (
	"os"
	"strings"
	"testing"
)

func TestCPUSeconds(t *testing.T) {
	// Fields after the name: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime ...
	rest := " S 1 2 3 0 -1 4194304 10 0 0 0 250 125 7 8 20 0 12 0 100 1000 200"
	tests := []struct {
		name    string
		stat    string
		want    float64
		wantErr bool
	}{
		{"plain name", "1234 (ctwatch)" + rest, 3.75, false},
		{"name with spaces and parentheses", "1234 (we (ird) name)" + rest, 3.75, false},
		{"zero", "1 (x) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0", 0, false},
		{"no name", "1234 ctwatch S 1 2", 0, true},
		{"truncated", "1234 (ctwatch) S 1 2 3", 0, true},
		{"not a number", "1 (x) S 1 2 3 0 -1 0 0 0 0 0 u 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cpuSeconds(tt.stat)
			if (err != nil) != tt.wantErr {
				t.Fatalf("cpuSeconds error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("cpuSeconds = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStatusKB(t *testing.T) {
	status := strings.Join([]string{
		"Name:\tctwatch",
		"VmPeak:\t 2000000 kB",
		"VmHWM:\t   98304 kB",
		"VmRSS:\t   65536 kB",
		"Threads:\t12",
	}, "\n")
	tests := []struct {
		key     string
		want    uint64
		wantErr bool
	}{
		{"VmHWM", 98304, false},
		{"VmRSS", 65536, false},
		{"VmSwap", 0, true},
		{"Threads", 0, true}, // not a kB line
		{"Vm", 0, true},      // a prefix of keys is not a key
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := statusKB(status, tt.key)
			if (err != nil) != tt.wantErr {
				t.Fatalf("statusKB(%s) error = %v, want error %v", tt.key, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("statusKB(%s) = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
}

// The parsers agree with the kernel's real files for this very process.
func TestReadUsageOfSelf(t *testing.T) {
	// Burn some CPU so that utime is at least one tick.
	x := 0
	for i := range 50_000_000 {
		x ^= i * i
	}
	_ = x
	u, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.CPUSeconds <= 0 {
		t.Errorf("CPU seconds = %v after a busy loop, want > 0", u.CPUSeconds)
	}
	if u.RSSKB == 0 || u.PeakRSSKB < u.RSSKB {
		t.Errorf("RSS %d kB, peak %d kB: want 0 < RSS <= peak", u.RSSKB, u.PeakRSSKB)
	}
	rss, err := readRSS(os.Getpid())
	if err != nil || rss == 0 {
		t.Errorf("readRSS = %d, %v", rss, err)
	}
}

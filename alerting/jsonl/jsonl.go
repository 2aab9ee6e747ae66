// Package jsonl is the sink that appends every hit, log event and digest,
// as JSON, one per line, to a file: an audit trail that tools like jq, a
// SIEM shipper or `tail -f` can read.
//
// A line is exactly the JSON document of the message (the event package's
// contract): a hit or event as stored in the stream, or a digest, which
// its "kind":"digest" tells apart. A test alert (`ctwatch sinks test`) is
// written unchanged too: the test hit says what it is in its own fields,
// and adding a marker here would make the line differ from what every
// other sink sends. Lines are written with O_APPEND and synced to disk
// before Notify returns, so an acknowledged alert is on disk. Delivery is at
// least once: after a crash between the write and the ack, a line can
// appear twice; readers dedupe on its "id".
package jsonl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/ctwatch/ctwatch/alerting"
)

// FileMode is the permission of a newly created file: alerts name the
// certificates an organisation cares about, which is not for everyone.
const FileMode os.FileMode = 0o640

// Notifier appends messages to one file. It is safe for concurrent use.
type Notifier struct {
	mu   sync.Mutex
	f    *os.File
	path string
	// check is set when the end of the file is unknown (a write failed
	// part way): before the next line, the file's last byte is checked.
	check bool
}

// Open opens (creating it if needed) the file at path for appending. If the
// file does not end in a newline — a line cut short by a crash — Open
// terminates that line first, so the damage stays on the broken line and the
// next one is whole. Close the Notifier when done.
func Open(path string) (*Notifier, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("jsonl: %w", err)
	}
	n := &Notifier{f: f, path: path}
	if err := n.repair(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return n, nil
}

// repair writes a newline if the file is not empty and does not end in one.
func (n *Notifier) repair() error {
	fi, err := n.f.Stat()
	if err != nil {
		return fmt.Errorf("jsonl: %s: %w", n.path, err)
	}
	if fi.Size() == 0 {
		return nil
	}
	var last [1]byte
	if _, err := n.f.ReadAt(last[:], fi.Size()-1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("jsonl: %s: read last byte: %w", n.path, err)
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := n.f.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("jsonl: %s: terminate partial line: %w", n.path, err)
	}
	if err := n.f.Sync(); err != nil {
		return fmt.Errorf("jsonl: %s: sync: %w", n.path, err)
	}
	return nil
}

// Notify appends m.Data as one line and syncs the file. JSON spread over
// several lines is compacted first; a message without a body, or whose body
// is not JSON, is an error.
func (n *Notifier) Notify(_ context.Context, m *alerting.Message) error {
	line := m.Data
	if len(line) == 0 {
		return errors.New("jsonl: empty message")
	}
	if !json.Valid(line) {
		return fmt.Errorf("jsonl: message %s: body is not JSON", m.ID())
	}
	if bytes.ContainsAny(line, "\r\n") {
		var buf bytes.Buffer
		if err := json.Compact(&buf, line); err != nil {
			return fmt.Errorf("jsonl: message %s: %w", m.ID(), err)
		}
		line = buf.Bytes()
	}
	rec := make([]byte, 0, len(line)+1)
	rec = append(append(rec, line...), '\n')

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.check {
		if err := n.repair(); err != nil {
			return err
		}
		n.check = false
	}
	if _, err := n.f.Write(rec); err != nil {
		n.check = true
		return fmt.Errorf("jsonl: %s: write: %w", n.path, err)
	}
	if err := n.f.Sync(); err != nil {
		return fmt.Errorf("jsonl: %s: sync: %w", n.path, err)
	}
	return nil
}

// Close closes the file. Notify fails after Close.
func (n *Notifier) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.f.Close(); err != nil {
		return fmt.Errorf("jsonl: %s: close: %w", n.path, err)
	}
	return nil
}

package ctlogtest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ctwatch/ctwatch/monitor/logtest"
)

// The JSON bodies of RFC 6962 section 4. encoding/json writes []byte as
// standard base64, as the RFC wants.
type (
	getSTHResponse struct {
		TreeSize          uint64 `json:"tree_size"`
		Timestamp         uint64 `json:"timestamp"`
		SHA256RootHash    []byte `json:"sha256_root_hash"`
		TreeHeadSignature []byte `json:"tree_head_signature"`
	}
	getSTHConsistencyResponse struct {
		Consistency [][]byte `json:"consistency"`
	}
	leafEntry struct {
		LeafInput []byte `json:"leaf_input"`
		ExtraData []byte `json:"extra_data"`
	}
	getEntriesResponse struct {
		Entries []leafEntry `json:"entries"`
	}
	getEntryAndProofResponse struct {
		LeafInput []byte   `json:"leaf_input"`
		ExtraData []byte   `json:"extra_data"`
		AuditPath [][]byte `json:"audit_path"`
	}
	getProofByHashResponse struct {
		LeafIndex uint64   `json:"leaf_index"`
		AuditPath [][]byte `json:"audit_path"`
	}
	getRootsResponse struct {
		Certificates [][]byte `json:"certificates"`
	}
)

// httpError is a response other than 200, with the reason as its body.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// serveHTTP runs one request through the switches (count, delay, failure),
// the endpoint, and truncation.
func (l *Log) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Requests to paths outside /ct/v1/ are counted under their full path.
	ep, handled := l.faults.Intercept(w, r)
	if handled {
		return
	}
	if !isEndpoint(ep) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	l.mu.Lock()
	resp, served, err := l.handle(ep, r.URL.Query())
	truncate := false
	if err == nil {
		truncate = l.faults.TakeTruncation(ep)
		if served != nil && !truncate {
			l.ranges = append(l.ranges, *served)
		}
	}
	l.mu.Unlock()

	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = &httpError{status: http.StatusInternalServerError, msg: err.Error()}
		}
		http.Error(w, he.msg, he.status)
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func isEndpoint(ep string) bool {
	switch ep {
	case EndpointGetSTH, EndpointGetSTHConsistency, EndpointGetEntries,
		EndpointGetEntryAndProof, EndpointGetProofByHash, EndpointGetRoots:
		return true
	}
	return false
}

// handle answers one request to a known endpoint. It returns the value to
// encode as JSON and, for get-entries, the range it holds. l.mu must be held;
// the value only references byte slices that are never modified.
func (l *Log) handle(ep string, q url.Values) (any, *Range, error) {
	switch ep {
	case EndpointGetSTH:
		return l.getSTH(), nil, nil
	case EndpointGetSTHConsistency:
		v, err := l.getSTHConsistency(q)
		return v, nil, err
	case EndpointGetEntries:
		return l.getEntries(q)
	case EndpointGetEntryAndProof:
		v, err := l.getEntryAndProof(q)
		return v, nil, err
	case EndpointGetProofByHash:
		v, err := l.getProofByHash(q)
		return v, nil, err
	case EndpointGetRoots:
		return getRootsResponse{Certificates: append([][]byte{}, l.roots...)}, nil, nil
	}
	return nil, nil, &httpError{status: http.StatusNotFound, msg: "no such endpoint"}
}

func (l *Log) getSTH() getSTHResponse {
	sig := l.sth.signature
	if l.badSig {
		sig = logtest.CorruptSignature(sig)
	}
	return getSTHResponse{
		TreeSize:          l.sth.size,
		Timestamp:         l.sth.timestamp,
		SHA256RootHash:    l.sth.root,
		TreeHeadSignature: sig,
	}
}

// uintParam parses a required decimal parameter.
func uintParam(q url.Values, name string) (uint64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, badRequest("missing parameter %q", name)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest("parameter %q is not a non-negative decimal integer", name)
	}
	return v, nil
}

func (l *Log) getSTHConsistency(q url.Values) (any, error) {
	first, err := uintParam(q, "first")
	if err != nil {
		return nil, err
	}
	second, err := uintParam(q, "second")
	if err != nil {
		return nil, err
	}
	if first > second {
		return nil, badRequest("first %d > second %d", first, second)
	}
	if second > l.sth.size {
		return nil, badRequest("second %d beyond tree size %d", second, l.sth.size)
	}
	p, err := l.tree.ConsistencyProof(first, second)
	if err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	return getSTHConsistencyResponse{Consistency: nonNil(p)}, nil
}

func (l *Log) getEntries(q url.Values) (any, *Range, error) {
	start, err := uintParam(q, "start")
	if err != nil {
		return nil, nil, err
	}
	end, err := uintParam(q, "end")
	if err != nil {
		return nil, nil, err
	}
	if start > end {
		return nil, nil, badRequest("start %d > end %d", start, end)
	}
	if end >= l.sth.size {
		return nil, nil, badRequest("end %d beyond tree size %d", end, l.sth.size)
	}
	if l.pageSize > 0 && end-start >= uint64(l.pageSize) {
		end = start + uint64(l.pageSize) - 1
	}
	resp := getEntriesResponse{Entries: make([]leafEntry, 0, end-start+1)}
	for _, e := range l.entries[start : end+1] {
		resp.Entries = append(resp.Entries, leafEntry{LeafInput: e.leafInput, ExtraData: e.extraData})
	}
	return resp, &Range{Start: start, End: end}, nil
}

func (l *Log) getEntryAndProof(q url.Values) (any, error) {
	index, err := uintParam(q, "leaf_index")
	if err != nil {
		return nil, err
	}
	size, err := uintParam(q, "tree_size")
	if err != nil {
		return nil, err
	}
	if index >= size {
		return nil, badRequest("leaf_index %d not below tree_size %d", index, size)
	}
	if size > l.sth.size {
		return nil, badRequest("tree_size %d beyond tree size %d", size, l.sth.size)
	}
	p, err := l.tree.InclusionProof(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	e := l.entries[index]
	return getEntryAndProofResponse{LeafInput: e.leafInput, ExtraData: e.extraData, AuditPath: nonNil(p)}, nil
}

func (l *Log) getProofByHash(q url.Values) (any, error) {
	h := q.Get("hash")
	if h == "" {
		return nil, badRequest("missing parameter %q", "hash")
	}
	hash, err := base64.StdEncoding.DecodeString(h)
	if err != nil || len(hash) != sha256.Size {
		return nil, badRequest("hash is not a base64 SHA-256 hash")
	}
	size, err := uintParam(q, "tree_size")
	if err != nil {
		return nil, err
	}
	if size == 0 || size > l.sth.size {
		return nil, badRequest("tree_size %d not in 1..%d", size, l.sth.size)
	}
	index, ok := l.byHash[[sha256.Size]byte(hash)]
	if !ok || index >= size {
		return nil, &httpError{status: http.StatusNotFound, msg: "no leaf with this hash in the tree"}
	}
	p, err := l.tree.InclusionProof(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	return getProofByHashResponse{LeafIndex: index, AuditPath: nonNil(p)}, nil
}

// nonNil makes an empty proof encode as [] rather than null.
func nonNil(p [][]byte) [][]byte {
	if p == nil {
		return [][]byte{}
	}
	return p
}

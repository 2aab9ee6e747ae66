package monitor

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ct "github.com/google/certificate-transparency-go"
)

// corpusCertsDir holds real certificates (see ../testdata/corpus/SOURCE.md).
const corpusCertsDir = "../testdata/corpus/certs"

// corpusDERs returns the DER of every certificate in the corpus, in file
// name order so that bodies built from them are the same on every run.
func corpusDERs(tb testing.TB) [][]byte {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(corpusCertsDir, "*.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(paths) < 8 {
		tb.Fatalf("corpus has %d certificates, want at least 8", len(paths))
	}
	var ders [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "CERTIFICATE" {
			tb.Fatalf("%s: no CERTIFICATE block", p)
		}
		ders = append(ders, block.Bytes)
	}
	return ders
}

// put24 appends n as a TLS uint24.
func put24(b []byte, n int) []byte {
	return append(b, byte(n>>16), byte(n>>8), byte(n))
}

// realEntries builds n entries shaped like a log's X.509 entries from ders:
// leaf_input a MerkleTreeLeaf wrapping a real certificate, extra_data a TLS
// certificate chain of the certificates that follow it, enough of them to
// reach chainBytes, as logs send a leaf's intermediate and root.
func realEntries(ders [][]byte, n, chainBytes int) []ct.LeafEntry {
	entries := make([]ct.LeafEntry, n)
	for i := range entries {
		der := ders[i%len(ders)]
		leaf := []byte{0, 0} // v1, timestamped_entry
		leaf = binary.BigEndian.AppendUint64(leaf, 1_700_000_000_000+uint64(i))
		leaf = append(leaf, 0, 0) // x509_entry
		leaf = put24(leaf, len(der))
		leaf = append(leaf, der...)
		leaf = append(leaf, 0, 0) // no extensions

		var chain []byte
		for j := 1; len(chain) < chainBytes; j++ {
			c := ders[(i+j)%len(ders)]
			chain = put24(chain, len(c))
			chain = append(chain, c...)
		}
		entries[i] = ct.LeafEntry{LeafInput: leaf, ExtraData: put24(nil, len(chain))}
		entries[i].ExtraData = append(entries[i].ExtraData, chain...)
	}
	return entries
}

// marshalEntries is what a log built on encoding/json would send.
func marshalEntries(tb testing.TB, entries []ct.LeafEntry) []byte {
	tb.Helper()
	body, err := json.Marshal(ct.GetEntriesResponse{Entries: entries})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// b64 is shorthand for building bodies by hand.
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// nested returns depth nested arrays around 1.
func nested(depth int) string {
	return strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth)
}

// checkAgainstJSON fails t unless decodeGetEntries agrees with encoding/json
// on body: both succeed with deeply equal entries (nil and empty slices told
// apart), or both fail. It also checks that the slices it returns cannot
// grow into each other.
func checkAgainstJSON(t *testing.T, body []byte) {
	t.Helper()
	got, err := decodeGetEntries(body)
	var want ct.GetEntriesResponse
	wantErr := json.Unmarshal(body, &want)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("error = %v, encoding/json error = %v\nbody: %.300q", err, wantErr, body)
	}
	if err != nil {
		return
	}
	if !reflect.DeepEqual(got, want.Entries) {
		t.Fatalf("entries differ from encoding/json's\n got: %.300v\nwant: %.300v\nbody: %.300q", got, want.Entries, body)
	}
	for i, e := range got {
		if cap(e.LeafInput) != len(e.LeafInput) || cap(e.ExtraData) != len(e.ExtraData) {
			t.Fatalf("entry %d: capacity not capped: leaf %d/%d, extra %d/%d",
				i, len(e.LeafInput), cap(e.LeafInput), len(e.ExtraData), cap(e.ExtraData))
		}
	}
}

// getEntriesCase is a body and whether the fast path must handle it itself:
// without that, a fast path that always fell back would pass every case.
type getEntriesCase struct {
	name     string
	body     string
	wantFast bool
}

// getEntriesCases returns the table shared by the test and the fuzz seeds.
func getEntriesCases(tb testing.TB) []getEntriesCase {
	realE := realEntries(corpusDERs(tb), 8, benchChainBytes)
	indented, err := json.MarshalIndent(ct.GetEntriesResponse{Entries: realE[:3]}, "", "\t")
	if err != nil {
		tb.Fatal(err)
	}
	// The hand-written shapes carry short runs of real base64 (whole 4-byte
	// groups, so still valid base64) to stay under fuzzSeedMax and seed the
	// fuzzer; the full bodies above are too large to (see fuzzSeedMax).
	// ed ends in padding so that both padded and unpadded tails appear.
	li, ed := b64(realE[0].LeafInput[:90]), b64(realE[0].ExtraData[:94])
	li2, ed2 := b64(realE[1].LeafInput[:60]), b64(realE[1].ExtraData[:31])
	// A run with its slashes escaped, as some JSON encoders write them:
	// valid JSON for the same bytes, which the fast path leaves to
	// encoding/json.
	var escapedLeaf string
	for _, e := range realE {
		full := b64(e.LeafInput)
		if i := strings.IndexByte(full, '/'); i >= 0 {
			from := i / 4 * 4
			escapedLeaf = strings.ReplaceAll(full[from:min(from+120, len(full))], "/", `\/`)
			break
		}
	}
	if escapedLeaf == "" {
		tb.Fatal("no corpus entry has a '/' in its base64; pick another")
	}

	return []getEntriesCase{
		// Real-shaped bodies and what logs vary in.
		{"real, one entry", string(marshalEntries(tb, realE[:1])), true},
		{"real, eight entries", string(marshalEntries(tb, realE)), true},
		{"indented", string(indented), true},
		{"all JSON whitespace everywhere", " \t\r\n{ \t\r\n\"entries\" \t\r\n: \t\r\n[ \t\r\n{ \t\r\n\"leaf_input\" \t\r\n: \t\r\n\"" + li + "\" \t\r\n, \t\r\n\"extra_data\" \t\r\n: \t\r\n\"" + ed + "\" \t\r\n} \t\r\n, \t\r\n{\"leaf_input\":\"" + li2 + "\",\"extra_data\":\"" + ed2 + "\"} \t\r\n] \t\r\n} \t\r\n", true},
		{"keys reordered", `{"entries":[{"extra_data":"` + ed + `","leaf_input":"` + li + `"}]}`, true},
		{"unknown keys with nested values", `{"meta":{"a":[1,-2.5e+3,0.5E-7,-0,true,false,null,{"x":"y\"\\\/\b\f\n\r\t\u00e9\uD800"}],"b":{}},` +
			`"entries":[{"leaf_input":"` + li + `","ext":{"k":[[],{}],"s":"\u0041"},"extra_data":"` + ed + `","n":12}],"z":"caf` + "\xc3\xa9" + `"}`, true},
		{"unknown value with invalid UTF-8", `{"entries":[],"x":"` + "\xff\xfe" + `"}`, true},
		{"unknown key after entries", `{"entries":[{"leaf_input":"` + li + `","extra_data":"` + ed + `"}],"next":"abc"}`, true},
		{"empty entries", `{"entries":[]}`, true},
		{"empty entries with space", `{ "entries" : [ ] }`, true},
		{"empty object", `{}`, true},
		{"entries null", `{"entries":null}`, true},
		{"entry null", `{"entries":[null,{"leaf_input":"AAAA","extra_data":"AAAA"}]}`, true},
		{"field null", `{"entries":[{"leaf_input":null,"extra_data":"AAAA"}]}`, true},
		{"field missing", `{"entries":[{"extra_data":"AAAA"}]}`, true},
		{"empty entry object", `{"entries":[{}]}`, true},
		{"empty strings", `{"entries":[{"leaf_input":"","extra_data":""}]}`, true},
		{"padding variants", `{"entries":[{"leaf_input":"QQ==","extra_data":"QUI="},{"leaf_input":"QUJD","extra_data":"AB=="}]}`, true},
		{"deep but within the fast limit", `{"x":` + nested(fastMaxDepth-3) + `,"entries":[]}`, true},

		// Shapes the fast path hands to encoding/json.
		{"escaped slash in base64", `{"entries":[{"leaf_input":"` + escapedLeaf + `","extra_data":"` + ed + `"}]}`, false},
		{"unicode escape in base64", `{"entries":[{"leaf_input":"\u0041AAA","extra_data":"AAAA"}]}`, false},
		{"escaped newline in base64", `{"entries":[{"leaf_input":"AAAA\nAAAA","extra_data":"AAAA"}]}`, false},
		{"key in other case", `{"Entries":[{"LEAF_INPUT":"AAAA","Extra_Data":"AAAA"}]}`, false},
		{"key folded by Unicode", `{"entrie` + "\u017f" + `":[{"leaf_input":"AAAA"}]}`, false},
		{"escaped key", `{"\u0065ntries":[{"leaf_input":"AAAA"}]}`, false},
		{"duplicate entries", `{"entries":[{"leaf_input":"AAAA"}],"entries":[{"extra_data":"AAAA"}]}`, false},
		{"duplicate field", `{"entries":[{"leaf_input":"AAAA","leaf_input":"QUJD"}]}`, false},
		{"deeper than the fast limit", `{"x":` + nested(fastMaxDepth+5) + `,"entries":[]}`, false},
		{"top-level null", `null`, false},

		// Invalid JSON, each somewhere the fast path looks.
		{"empty body", ``, false},
		{"only space", " \n", false},
		{"unterminated object", `{"entries":[]`, false},
		{"unterminated array", `{"entries":[`, false},
		{"unterminated base64 string", `{"entries":[{"leaf_input":"AAAA`, false},
		{"unterminated unknown string", `{"x":"abc`, false},
		{"trailing garbage", `{"entries":[]}x`, false},
		{"second value", `{"entries":[]} {}`, false},
		{"trailing comma in object", `{"entries":[],}`, false},
		{"trailing comma in array", `{"entries":[{"leaf_input":"AAAA"},]}`, false},
		{"trailing comma in entry", `{"entries":[{"leaf_input":"AAAA",}]}`, false},
		{"leading comma", `{,"entries":[]}`, false},
		{"missing colon", `{"entries" []}`, false},
		{"missing comma", `{"entries":[] "x":1}`, false},
		{"single quotes", `{'entries':[]}`, false},
		{"bad literal", `{"x":tru,"entries":[]}`, false},
		{"bad null", `{"entries":nul}`, false},
		{"literal with tail", `{"entries":nullx}`, false},
		{"bad number leading zero", `{"x":01}`, false},
		{"bad number dot", `{"x":1.}`, false},
		{"bad number minus", `{"x":-}`, false},
		{"bad number exponent", `{"x":1e}`, false},
		{"bad number plus", `{"x":+1}`, false},
		{"control character in unknown string", "{\"x\":\"a\tb\",\"entries\":[]}", false},
		{"raw newline in base64", "{\"entries\":[{\"leaf_input\":\"AAAA\nAAAA\"}]}", false},
		{"raw CR in base64", "{\"entries\":[{\"leaf_input\":\"AAAA\rAAAA\"}]}", false},
		{"invalid escape", `{"x":"\x41","entries":[]}`, false},
		{"short unicode escape", `{"x":"\u12","entries":[]}`, false},
		{"byte order mark", "\ufeff{\"entries\":[]}", false},
		{"nesting beyond encoding/json's limit", `{"x":` + nested(10001) + `}`, false},

		// Valid JSON that encoding/json still rejects.
		{"top-level array", `[]`, false},
		{"entries not an array", `{"entries":{}}`, false},
		{"entry not an object", `{"entries":[1]}`, false},
		{"field not a string", `{"entries":[{"leaf_input":1}]}`, false},
		{"base64 bad length", `{"entries":[{"leaf_input":"AAA"}]}`, false},
		{"base64 bad character", `{"entries":[{"leaf_input":"AA!A"}]}`, false},
		{"base64 URL alphabet", `{"entries":[{"leaf_input":"AA-_"}]}`, false},
		{"base64 missing padding", `{"entries":[{"leaf_input":"QQ"}]}`, false},
		{"base64 too much padding", `{"entries":[{"leaf_input":"A==="}]}`, false},
		{"base64 non-ASCII", `{"entries":[{"leaf_input":"AA` + "\xc3\xa9" + `"}]}`, false},
	}
}

func TestDecodeGetEntries(t *testing.T) {
	for _, tc := range getEntriesCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			checkAgainstJSON(t, body)
			if _, fast := fastDecodeGetEntries(body); fast != tc.wantFast {
				t.Errorf("fast path handled it = %v, want %v", fast, tc.wantFast)
			}
		})
	}
}

// TestDecodeGetEntriesNoAliasing checks that decoded bytes do not live in
// the body, so a caller may reuse the body's buffer.
func TestDecodeGetEntriesNoAliasing(t *testing.T) {
	want := realEntries(corpusDERs(t), 4, benchChainBytes)
	body := marshalEntries(t, want)
	got, err := decodeGetEntries(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'A'
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("entries changed when the body was overwritten")
	}
}

// TestDecodeGetEntriesAllocs holds the fast path to its promise of two
// allocations per response, whatever the number of entries.
func TestDecodeGetEntriesAllocs(t *testing.T) {
	for _, n := range []int{1, 256} {
		body := marshalEntries(t, realEntries(corpusDERs(t), n, benchChainBytes))
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := decodeGetEntries(body); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 2 {
			t.Errorf("%d entries: %v allocations per decode, want at most 2", n, allocs)
		}
	}
}

// fuzzSeedMax bounds the seeds given to the fuzzer. The fuzzer minimizes
// every new interesting input, in time quadratic in its length, for up to a
// minute; with real-sized (multi-kilobyte) seeds, a 60-second run spent
// nearly all its time minimizing and found 2 new inputs, against over 100
// with seeds under this bound. The large cases still run in the table test.
const fuzzSeedMax = 1 << 10

func FuzzDecodeGetEntries(f *testing.F) {
	for _, tc := range getEntriesCases(f) {
		if len(tc.body) <= fuzzSeedMax {
			f.Add([]byte(tc.body))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkAgainstJSON(t, body)
	})
}

// benchChainBytes makes extra_data average ~2.9 KB over the corpus, about
// what logs send for an intermediate and a root.
const benchChainBytes = 1500

// benchmarkBody is a 256-entry response of real certificates with ~3 KB of
// extra_data each, the size of a full page from most RFC 6962 logs.
func benchmarkBody(b *testing.B) []byte {
	body := marshalEntries(b, realEntries(corpusDERs(b), 256, benchChainBytes))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	return body
}

func BenchmarkDecodeGetEntries(b *testing.B) {
	body := benchmarkBody(b)
	for b.Loop() {
		entries, err := decodeGetEntries(body)
		if err != nil || len(entries) != 256 {
			b.Fatalf("%d entries, err %v", len(entries), err)
		}
	}
}

// BenchmarkDecodeGetEntriesJSON is the encoding/json baseline that
// BenchmarkDecodeGetEntries replaces; compare the two with benchstat.
func BenchmarkDecodeGetEntriesJSON(b *testing.B) {
	body := benchmarkBody(b)
	for b.Loop() {
		var resp ct.GetEntriesResponse
		if err := json.Unmarshal(body, &resp); err != nil || len(resp.Entries) != 256 {
			b.Fatalf("%d entries, err %v", len(resp.Entries), err)
		}
	}
}

package rules

import (
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ctwatch/ctwatch/cert"
)

// lookalikeRule is the rule most tests use: two brands and their own
// domains allowed, default keywords and threshold.
const lookalikeRule = `lookalike:
  brands: [paypal, examplebank, microsoft]
  allow: [paypal.com, paypal.me, examplebank.com, microsoft.com]`

// The punycode forms below were computed with Python's "punycode" codec,
// independently of the code under test.
func TestLookalikeHits(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		// want are substrings of the reason, in order.
		want []string
	}{
		{"cyrillic homoglyph", []string{"xn--pypal-4ve.com"}, []string{
			`"xn--pypal-4ve.com" (pаypal.com) looks like brand "paypal": confusable skeleton equals brand (0.95), mixed Latin+Cyrillic scripts in one label (+0.10), punycode label (+0.05); score 1.00, threshold 0.8`,
		}},
		{"greek homoglyph", []string{"www.xn--aypal-2ce.com"}, []string{
			`(www.ρaypal.com) looks like brand "paypal": confusable skeleton equals brand (0.95), mixed Latin+Greek scripts`,
		}},
		{"homoglyph in a longer brand", []string{"xn--examplebnk-6qi.co.uk"}, []string{
			`(examplebаnk.co.uk) looks like brand "examplebank": confusable skeleton equals brand`,
		}},
		{"raw unicode name", []string{"pаypal.com"}, []string{
			`"pаypal.com" looks like brand "paypal": confusable skeleton equals brand (0.95)`,
		}},
		{"digit for letter", []string{"paypa1.com"}, []string{
			`"paypa1.com" looks like brand "paypal": confusable skeleton equals brand (0.95); score 0.95, threshold 0.8`,
		}},
		{"rn for m", []string{"login.rnicrosoft.net"}, []string{
			`looks like brand "microsoft": confusable skeleton equals brand (0.95)`,
		}},
		{"zero for o", []string{"rnicr0soft.com"}, []string{`brand "microsoft": confusable skeleton equals brand`}},
		{"diacritic typo", []string{"xn--paypl-jra.com"}, []string{
			`(paypäl.com) looks like brand "paypal": Damerau-Levenshtein distance 1 from brand (0.85), punycode label (+0.05); score 0.90`,
		}},
		{"typo: extra letter", []string{"paypall.com"}, []string{
			`"paypall.com" looks like brand "paypal": Damerau-Levenshtein distance 1 from brand (0.85); score 0.85`,
		}},
		{"typo: transposition", []string{"pyapal.net"}, []string{`Damerau-Levenshtein distance 1 from brand (0.85)`}},
		{"typo: missing letter", []string{"exampleban.com"}, []string{`brand "examplebank": Damerau-Levenshtein distance 1`}},
		{"brand with keyword", []string{"paypal-login.example"}, []string{
			`"paypal-login.example" looks like brand "paypal": brand with keyword "login" (0.90); score 0.90`,
		}},
		{"keyword before brand, domain embedded", []string{"secure-paypal.com.evil.example"}, []string{`brand with keyword "secure" (0.90)`}},
		{"keyword in another label", []string{"verify.examplebank-online.example"}, []string{`brand "examplebank": brand with keyword "verify"`}},
		{"embedded brand domain", []string{"paypal.com.evil.example"}, []string{`looks like brand "paypal": embeds "paypal.com" in another domain (0.90)`}},
		{"wildcard", []string{"*.paypal-secure.example"}, []string{`"*.paypal-secure.example" looks like brand "paypal": brand with keyword "secure"`}},
		{"brand in a registered domain not allowed", []string{"paypal.de"}, []string{
			`looks like brand "paypal": brand is the registered domain "paypal.de", which is not allowed (0.90)`,
		}},
		{"homoglyph in a subdomain label", []string{"xn--pypal-4ve.evil.example"}, []string{
			`brand is a subdomain label of another domain (0.75), mixed Latin+Cyrillic scripts in one label (+0.10), punycode label (+0.05); score 0.90`,
		}},
		{"best name wins, others counted", []string{"paypal.com", "paypal-support.example", "xn--pypal-4ve.com", "unrelated.example", "paypall.com"}, []string{
			`"xn--pypal-4ve.com"`, `score 1.00`, `; 2 more names look alike`,
		}},
		{"trailing dot", []string{"paypa1.com."}, []string{`"paypa1.com." looks like brand "paypal"`}},
	}
	e := mustParse(t, oneRule(lookalikeRule))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Match(certWith(tt.names...))
			if len(got) != 1 {
				t.Fatalf("Match(%q) = %+v, want one hit", tt.names, got)
			}
			rest := got[0].Reason
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("reason %q\nlacks (in order) %q", got[0].Reason, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestLookalikeMisses(t *testing.T) {
	tests := []struct {
		name  string
		names []string
	}{
		{"brand's own domains", []string{"paypal.com", "www.paypal.com", "paypal.me", "examplebank.com", "microsoft.com"}},
		{"allowed subdomain with a keyword", []string{"login.paypal.com", "secure-account.examplebank.com", "*.update.microsoft.com"}},
		{"unrelated names", []string{"paper.example", "pal.com", "google.com", "www.example.org", "pay.example", "microscope.com"}},
		{"brand inside a word, no keyword", []string{"mypaypal.example", "paypalish.example"}},
		{"subdomain label alone", []string{"paypal.zendesk.com"}},
		{"keyword only", []string{"login.example.com", "secure-update.example"}},
		{"too far for a short edit budget", []string{"paypl.example.com", "paaypall.com"}},
		{"public suffixes and bare labels", []string{"com", "co.uk", "paypal", "localhost"}},
		{"hostile names", []string{
			"", ".", "..", "paypal..com", "*.", "xn--", "xn--.com", "xn--zzzzzzz-.com", "\xff\xfe.com",
			strings.Repeat("paypal-", 40) + ".com", strings.Repeat("a.", 200) + "com",
			strings.Repeat("m", 63) + ".com",
		}},
		{"no names", nil},
	}
	e := mustParse(t, oneRule(lookalikeRule))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.Match(certWith(tt.names...)); got != nil {
				t.Errorf("Match(%q) = %+v, want none", tt.names, got)
			}
		})
	}
}

func TestLookalikeOptions(t *testing.T) {
	tests := []struct {
		name string
		rule string
		host string
		want string // "" for no hit, else a substring of the reason
	}{
		{"lower threshold catches a contained brand", "lookalike: {brands: [paypal], threshold: 0.7}",
			"mypaypal.example", `label "mypaypal" contains brand (0.70); score 0.70, threshold 0.7`},
		{"two edits on a long brand score below the default", "lookalike: {brands: [examplebank]}", "exampelbanc.com", ""},
		{"two edits on a long brand, lower threshold", "lookalike: {brands: [examplebank], threshold: 0.75}",
			"exampelbanc.com", `brand "examplebank": Damerau-Levenshtein distance 2 from brand (0.75)`},
		{"a different first character weighs less", "lookalike: {brands: [tdbank], threshold: 0.7}",
			"dbank.com", `Damerau-Levenshtein distance 1 from brand, first character differs (0.75)`},
		{"a different first character stays below the default", "lookalike: {brands: [tdbank]}", "dbank.com", ""},
		{"higher threshold drops a typo", "lookalike: {brands: [paypal], threshold: 0.9}", "paypall.com", ""},
		{"threshold 1 keeps a full-score homoglyph", "lookalike: {brands: [paypal], threshold: 1}", "xn--pypal-4ve.com", "score 1.00, threshold 1"},
		{"own keywords replace the defaults", "lookalike: {brands: [paypal], keywords: [refund]}", "paypal-login.example", ""},
		{"own keywords are used", "lookalike: {brands: [paypal], keywords: [refund]}", "paypal-refund.example", `brand with keyword "refund"`},
		{"no allow list: the brand's own domain hits", "lookalike: {brands: [paypal]}", "paypal.com", `brand is the registered domain "paypal.com", which is not allowed`},
		{"brands are case-insensitive", "lookalike: {brands: [PayPal], allow: [PayPal.com]}", "www.paypal.com", ""},
		{"short brand counts as a whole word", "lookalike: {brands: [ing]}", "ing-login.example", `brand "ing": brand with keyword "login"`},
		{"short brand inside a word does not", "lookalike: {brands: [ing]}", "accounting-login.example", ""},
		{"short brand has no typo budget", "lookalike: {brands: [chase]}", "chasf.com", ""},
		{"IDN allow entry", "lookalike: {brands: [bucher], allow: [bücher.example]}", "xn--bcher-kva.example", ""},
		// A contained brand reaches the default threshold only with the
		// modifiers of its label (xn--mypypal-4fg is mypаypal with a
		// Cyrillic а, from Python's punycode codec).
		{"modifiers lift a contained brand over the threshold", "lookalike: {brands: [paypal]}",
			"xn--mypypal-4fg.example", `contains brand (0.70), mixed Latin+Cyrillic scripts in one label (+0.10), punycode label (+0.05); score 0.85`},
		{"a keyword in a subdomain lifts a contained brand", "lookalike: {brands: [paypal]}",
			"login.mypaypal.example", `brand "paypal": brand with keyword "login" (0.90)`},
		{"a keyword only in the public suffix does not", "lookalike: {brands: [paypal], keywords: [com]}",
			"mypaypal.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, oneRule(tt.rule)).Match(certWith(tt.host))
			switch {
			case tt.want == "" && got != nil:
				t.Errorf("Match(%q) = %+v, want none", tt.host, got)
			case tt.want != "" && len(got) != 1:
				t.Errorf("Match(%q) = %+v, want one hit", tt.host, got)
			case tt.want != "" && !strings.Contains(got[0].Reason, tt.want):
				t.Errorf("reason %q lacks %q", got[0].Reason, tt.want)
			}
		})
	}
}

// TestLookalikeUnderNot checks the describe side: a rule that holds because
// no name looks alike.
func TestLookalikeUnderNot(t *testing.T) {
	e := mustParse(t, oneRule("not:\n  lookalike: {brands: [paypal, examplebank]}"))
	got := e.Match(certWith("example.org"))
	if len(got) != 1 || got[0].Reason != "not a lookalike of brand paypal, examplebank" {
		t.Errorf("Match = %+v", got)
	}
	if got := e.Match(certWith("paypa1.com")); got != nil {
		t.Errorf("Match(paypa1.com) = %+v, want none", got)
	}
}

func TestLookalikeErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []Problem
	}{
		{"not a mapping", "lookalike: [paypal]", []Problem{{Line: 5, Msg: "lookalike must be a mapping"}}},
		{"no brands", "lookalike: {threshold: 0.5}", []Problem{{Line: 5, Msg: "lookalike has no brands"}}},
		{"empty brands", "lookalike:\n  brands: []", []Problem{{Line: 6, Msg: "brands list is empty"}}},
		{"brands not a list", "lookalike:\n  brands: paypal", []Problem{{Line: 6, Msg: "brands must be a list"}}},
		{"bad brands", "lookalike:\n  brands:\n    - pay.pal\n    - pp\n    - -paypal\n    - pаypal\n    - paypal", []Problem{
			{Line: 7, Msg: `invalid brand "pay.pal": use only ASCII letters, digits and hyphens, as in a registered domain label`},
			{Line: 8, Msg: `invalid brand "pp": shorter than 3 characters`},
			{Line: 9, Msg: `invalid brand "-paypal": starts or ends with a hyphen`},
			{Line: 10, Msg: `invalid brand "pаypal": use only ASCII letters, digits and hyphens, as in a registered domain label`},
		}},
		{"brand too long", "lookalike:\n  brands: [" + strings.Repeat("a", 64) + "]", []Problem{{Line: 6, Msg: `invalid brand "` + strings.Repeat("a", 64) + `": longer than 63 characters`}}},
		{"bad threshold", "lookalike:\n  brands: [paypal]\n  threshold: high", []Problem{{Line: 7, Msg: `invalid lookalike threshold "high" (want a number above 0 and at most 1)`}}},
		{"threshold above 1", "lookalike:\n  brands: [paypal]\n  threshold: 1.5", []Problem{{Line: 7, Msg: `invalid lookalike threshold "1.5" (want a number above 0 and at most 1)`}}},
		{"threshold zero", "lookalike:\n  brands: [paypal]\n  threshold: 0", []Problem{{Line: 7, Msg: `invalid lookalike threshold "0" (want a number above 0 and at most 1)`}}},
		{"threshold NaN", "lookalike:\n  brands: [paypal]\n  threshold: .nan", []Problem{{Line: 7, Msg: `invalid lookalike threshold ".nan" (want a number above 0 and at most 1)`}}},
		{"threshold list", "lookalike:\n  brands: [paypal]\n  threshold: [0.5]", []Problem{{Line: 7, Msg: "threshold must be a string"}}},
		{"empty keywords", "lookalike:\n  brands: [paypal]\n  keywords: []", []Problem{{Line: 7, Msg: "keywords list is empty"}}},
		{"bad keyword", "lookalike:\n  brands: [paypal]\n  keywords: [log in, x]", []Problem{
			{Line: 7, Msg: `invalid keyword "log in": use only ASCII letters, digits and hyphens, as in a registered domain label`},
			{Line: 7, Msg: `invalid keyword "x": shorter than 2 characters`},
		}},
		{"bad allow", "lookalike:\n  brands: [paypal]\n  allow:\n    - \"*.paypal.com\"\n    - .paypal.com\n    - pay_pal.com", []Problem{
			{Line: 8, Msg: `invalid allowed domain "*.paypal.com": want a domain name such as brand.example (its subdomains are allowed too)`},
			{Line: 9, Msg: `invalid allowed domain ".paypal.com": want a domain name such as brand.example (its subdomains are allowed too)`},
			{Line: 10, Msg: `invalid allowed domain "pay_pal.com": idna: disallowed rune U+005F`},
		}},
		{"empty allow", "lookalike:\n  brands: [paypal]\n  allow: []", []Problem{{Line: 7, Msg: "allow list is empty"}}},
		{"unknown key", "lookalike:\n  brands: [paypal]\n  brand: [x]", []Problem{{Line: 7, Msg: `unknown key "brand" in lookalike (want brands, keywords, allow, threshold)`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse("f.yaml", []byte(oneRule(tt.body)))
			if e != nil {
				t.Fatal("Parse returned an engine")
			}
			le, ok := errors.AsType[*LoadError](err)
			if !ok {
				t.Fatalf("error %v is %T", err, err)
			}
			want := slices.Clone(tt.want)
			for i := range want {
				want[i].File = "f.yaml"
			}
			if !slices.Equal(le.Problems, want) {
				t.Errorf("Problems:\n%s\nwant:\n%s", le.Error(), (&LoadError{want}).Error())
			}
		})
	}
}

func TestOSADistance(t *testing.T) {
	tests := []struct {
		a, b  string
		limit int
		want  int
	}{
		{"paypal", "paypal", 2, 0},
		{"paypall", "paypal", 2, 1},
		{"pyapal", "paypal", 2, 1},
		{"ca", "abc", 3, 3}, // OSA, not unrestricted Damerau–Levenshtein (2)
		{"kitten", "sitting", 5, 3},
		{"", "abc", 5, 3},
		{"abc", "", 5, 3},
		{"kitten", "sitting", 1, 2}, // cut off at limit+1
		{"aaaaaaaa", "bbbbbbbb", 2, 3},
	}
	for _, tt := range tests {
		if got := osaDistance([]byte(tt.a), []byte(tt.b), tt.limit); got != tt.want {
			t.Errorf("osaDistance(%q, %q, %d) = %d, want %d", tt.a, tt.b, tt.limit, got, tt.want)
		}
		if got := osaDistance([]rune(tt.a), []rune(tt.b), tt.limit); got != tt.want {
			t.Errorf("osaDistance(runes %q, %q, %d) = %d, want %d", tt.a, tt.b, tt.limit, got, tt.want)
		}
	}
}

// brands100 is a hundred real brand labels for the corpus test and the
// benchmark.
func brands100() []string {
	return strings.Fields(`paypal google microsoft apple amazon facebook instagram whatsapp netflix linkedin
		twitter youtube yahoo outlook office365 dropbox adobe github gitlab slack
		zoom spotify ebay walmart target costco chase wellsfargo bankofamerica citibank
		hsbc barclays santander lloyds natwest revolut monzo coinbase binance kraken
		metamask blockchain stripe shopify salesforce oracle ibm intel samsung huawei
		xiaomi alibaba aliexpress tencent wechat baidu yandex mailru vkontakte telegram
		discord steam roblox epicgames playstation xbox nintendo docusign fedex ups
		dhl usps royalmail irs hmrc americanexpress mastercard visa capitalone usbank
		pnc tdbank scotiabank rbc ing abnamro rabobank deutschebank commerzbank sparkasse
		postbank unicredit intesa bbva caixabank nordea danskebank swedbank booking airbnb`)
}

// corpusCerts decodes the shared corpus of real leaf certificates.
func corpusCerts(tb testing.TB) []*cert.Cert {
	tb.Helper()
	files, err := filepath.Glob("../testdata/corpus/certs/*.pem")
	if err != nil || len(files) == 0 {
		tb.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	var out []*cert.Cert
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		c, err := parsePEMCert(data)
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		out = append(out, c)
	}
	return out
}

// parsePEMCert decodes the first certificate of a PEM file.
func parsePEMCert(data []byte) (*cert.Cert, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	return cert.Parse(block.Bytes)
}

// TestLookalikeCorpus scores every name of the real corpus, one at a time,
// against a hundred brands: a name may look like a brand only when it
// spells that brand (it is the brand's own name: google-analytics.com for
// google), never a brand that is not theirs.
func TestLookalikeCorpus(t *testing.T) {
	e := mustParse(t, oneRule("lookalike:\n  brands: ["+strings.Join(brands100(), ", ")+"]"))
	names, own := 0, 0
	for _, c := range corpusCerts(t) {
		for _, n := range c.DNSNames {
			names++
			for _, m := range e.Match(certWith(n)) {
				_, rest, _ := strings.Cut(m.Reason, ` looks like brand "`)
				brand, _, _ := strings.Cut(rest, `"`)
				if brand == "" || !strings.Contains(n, brand) {
					t.Errorf("%q hits a brand that is not its own: %s", n, m.Reason)
				}
				own++
			}
		}
	}
	// The corpus holds certificates of some of the brands (google.com,
	// microsoft.com), which no allow list covers here.
	if names < 1000 || own == 0 {
		t.Errorf("scored %d names, %d own-brand hits: corpus too small?", names, own)
	}
}

// BenchmarkLookalike matches certificates of the corpus (315 real leaf
// certificates, ~8,800 names) against one rule of 100 brands. "all" is
// every certificate, including the brands' own (google.com, microsoft.com:
// about half the corpus names), whose names take the slow path and whose
// reasons are written; "miss" keeps the certificates on which the rule
// does not hold; "plain" is the corpus names in which no brand is spelt,
// ten to a certificate: the common case of a CT log.
func BenchmarkLookalike(b *testing.B) {
	brands := brands100()
	e, err := Parse("bench.yaml", []byte(oneRule("lookalike:\n  brands: ["+strings.Join(brands, ", ")+"]")))
	if err != nil {
		b.Fatal(err)
	}
	all := corpusCerts(b)
	var miss, plain []*cert.Cert
	var names []string
	for _, c := range all {
		if e.Match(c) == nil {
			miss = append(miss, c)
		}
		for _, n := range c.DNSNames {
			if !slices.ContainsFunc(brands, func(br string) bool { return strings.Contains(n, br) }) {
				names = append(names, n)
			}
		}
	}
	for len(names) >= 10 {
		plain = append(plain, certWith(names[:10]...))
		names = names[10:]
	}
	for _, set := range []struct {
		name  string
		certs []*cert.Cert
	}{{"all", all}, {"miss", miss}, {"plain", plain}} {
		names := 0
		for _, c := range set.certs {
			names += len(c.DNSNames)
		}
		b.Run(set.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, c := range set.certs {
					e.Match(c)
				}
			}
			per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(per/float64(len(set.certs)), "ns/cert")
			b.ReportMetric(per/float64(names), "ns/name")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestLookalikeNoAllocOnPlainNames pins the fast path: names unrelated to
// every brand are rejected without allocating.
func TestLookalikeNoAllocOnPlainNames(t *testing.T) {
	e := mustParse(t, oneRule("lookalike:\n  brands: ["+strings.Join(brands100(), ", ")+"]"))
	c := certWith("www.example.org", "*.cdn.example.net", "mail.example.co.uk", "a.b.c.d.example.com")
	if got := e.Match(c); got != nil {
		t.Fatalf("Match = %+v, want none", got)
	}
	if n := testing.AllocsPerRun(100, func() { e.Match(c) }); n != 0 {
		t.Errorf("Match allocates %v times per certificate, want 0", n)
	}
}

// TestLookalikeConcurrent runs one compiled matcher from several
// goroutines (for -race).
func TestLookalikeConcurrent(t *testing.T) {
	e := mustParse(t, oneRule(lookalikeRule))
	c := certWith("www.example.org", "xn--pypal-4ve.com", "paypal-login.example")
	want := e.Match(c)
	if len(want) != 1 {
		t.Fatalf("Match = %+v", want)
	}
	done := make(chan []Match)
	for range 4 {
		go func() {
			var last []Match
			for range 50 {
				last = e.Match(c)
			}
			done <- last
		}()
	}
	for range 4 {
		if got := <-done; !slices.Equal(got, want) {
			t.Errorf("concurrent Match = %+v, want %+v", got, want)
		}
	}
}

// FuzzLookalike feeds arbitrary certificate names to the matcher: it must
// not panic, and a hit must name a brand of the rule.
func FuzzLookalike(f *testing.F) {
	for _, s := range []string{
		"xn--pypal-4ve.com", "paypal-login.example", "paypal.com.evil.example", "pаypal.com",
		"*.xn--zz.com", "a..b", "\xff.com", "xn--examplebnk-6qi.co.uk", "s3.amazonaws.com",
	} {
		f.Add(s)
	}
	e := mustParse(f, oneRule(lookalikeRule))
	f.Fuzz(func(t *testing.T, name string) {
		for _, m := range e.Match(certWith(name, "x."+name)) {
			if !strings.Contains(m.Reason, `looks like brand "`) {
				t.Errorf("reason %q", m.Reason)
			}
		}
	})
}

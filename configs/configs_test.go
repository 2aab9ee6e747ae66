// DSDTestProvider (interception-cas) has a negative serial number, which
// crypto/x509 refuses by default; the test re-derives its hashes and
// subject all the same.

//go:debug x509negativeserial=1

package configs

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"
)

// feedIndex is the format of feeds/<name>.yaml.
type feedIndex struct {
	Feed         string `yaml:"feed"`
	Description  string `yaml:"description"`
	Certificates []struct {
		File       string `yaml:"file"`
		Subject    string `yaml:"subject"`
		CertSHA256 string `yaml:"cert_sha256"`
		SPKISHA256 string `yaml:"spki_sha256"`
		Incident   string `yaml:"incident"`
		Source     string `yaml:"source"`
	} `yaml:"certificates"`
}

// issuerSet is the format of issuers/<owner>.yaml.
type issuerSet struct {
	Owner   string        `yaml:"owner"`
	Name    string        `yaml:"name"`
	Issuers []issuerEntry `yaml:"issuers"`
}

type issuerEntry struct {
	Subject    string `yaml:"subject"`
	CertSHA256 string `yaml:"cert_sha256"`
	SPKISHA256 string `yaml:"spki_sha256"`
	Source     string `yaml:"source"`
}

var (
	sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// An incident line starts with a year (or a range like 2011/2013) and
	// a place.
	incidentLine = regexp.MustCompile(`^(19|20)\d\d(/(19|20)\d\d)?, [^,:]+: \S`)
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFeedIndexesMatchCertificates(t *testing.T) {
	// Expected membership and a few hashes from the data set's INDEX.md,
	// which were computed with openssl, not Go.
	tests := []struct {
		feed  string
		count int
		spot  map[string]string // file -> cert SHA-256
	}{
		{"distrusted-cas", 7, map[string]string{
			"nl-diginotar-root-ca.pem":         "0d136e439f0ab6e97f3a02a540da9f0641aa554e1d66ea51ae2920d51b2f7217",
			"tr-turktrust-ego-gov-tr-2013.pem": "42187727be39faf667aeb92bf0cc4e268f6e2ead2cefbec575bdc90430024f69",
			"cn-cnnic-root.pem":                "e28393773da845a679f2080cc7fb44a3b7a1c3792cb7eb7729fdcb6a8d99aea7",
		}},
		{"interception-cas", 17, map[string]string{
			"kz-qaznet-trust-network-2019.pem": "00309c736dd661da6f1eb24173aa849944c168a43a15bffd192eecfdb6f8dbd2",
			"ru-trusted-sub-ca-2022.pem":       "bbbde2103e790b999ec62bd03cf625a5a2e7c316e10afe6a490eedead8b3fd9b",
			"eg-mcs-holdings-2015.pem":         "2740d956b1127b791aa1b3cc644a4dbedba76186a23638b95102351a834ea861",
			"us-dell-dsdtestprovider-2015.pem": "0f912fd7be760be25afbc56bdc09cd9e5dcc9c6f6a55a778aefcb6aa30e31554",
		}},
	}
	var names []string
	for _, tt := range tests {
		names = append(names, tt.feed)
	}
	if got := FeedNames(); !slices.Equal(got, names) {
		t.Fatalf("FeedNames() = %q, want %q", got, names)
	}
	seenCert := map[string]string{} // cert SHA-256 -> feed
	for _, tt := range tests {
		t.Run(tt.feed, func(t *testing.T) {
			raw, ok := Feed(tt.feed)
			if !ok {
				t.Fatal("Feed: not found")
			}
			var idx feedIndex
			if err := yaml.Unmarshal(raw, &idx); err != nil {
				t.Fatal(err)
			}
			if idx.Feed != tt.feed || idx.Description == "" {
				t.Errorf("feed %q, description %q", idx.Feed, idx.Description)
			}
			if len(idx.Certificates) != tt.count {
				t.Errorf("%d certificates, want %d", len(idx.Certificates), tt.count)
			}
			listed := map[string]bool{}
			for _, e := range idx.Certificates {
				listed[e.File] = true
				data, ok := FeedCert(tt.feed, e.File)
				if !ok {
					t.Errorf("%s: FeedCert: not found", e.File)
					continue
				}
				block, rest := pem.Decode(data)
				if block == nil || block.Type != "CERTIFICATE" {
					t.Errorf("%s: no PEM certificate", e.File)
					continue
				}
				if extra, _ := pem.Decode(rest); extra != nil {
					t.Errorf("%s: more than one PEM block", e.File)
				}
				c, err := x509.ParseCertificate(block.Bytes)
				if err != nil {
					t.Errorf("%s: %v", e.File, err)
					continue
				}
				if got := hexSum(block.Bytes); got != e.CertSHA256 {
					t.Errorf("%s: cert_sha256 %s, the PEM hashes to %s", e.File, e.CertSHA256, got)
				}
				if got := hexSum(c.RawSubjectPublicKeyInfo); got != e.SPKISHA256 {
					t.Errorf("%s: spki_sha256 %s, the PEM's key hashes to %s", e.File, e.SPKISHA256, got)
				}
				if got := c.Subject.String(); got != e.Subject {
					t.Errorf("%s: subject %q, the PEM has %q", e.File, e.Subject, got)
				}
				if !incidentLine.MatchString(e.Incident) {
					t.Errorf("%s: incident %q does not start with year, place", e.File, e.Incident)
				}
				if e.Source == "" {
					t.Errorf("%s: no source", e.File)
				}
				if want, ok := tt.spot[e.File]; ok && e.CertSHA256 != want {
					t.Errorf("%s: cert_sha256 %s, INDEX.md has %s", e.File, e.CertSHA256, want)
				}
				if other, dup := seenCert[e.CertSHA256]; dup {
					t.Errorf("%s: already listed in %s", e.File, other)
				}
				seenCert[e.CertSHA256] = tt.feed
			}
			for file := range tt.spot {
				if !listed[file] {
					t.Errorf("%s is not in the feed", file)
				}
			}
			// Every shipped PEM is in the index.
			entries, err := fs.ReadDir(feedFiles, path.Join("feeds", tt.feed))
			if err != nil {
				t.Fatal(err)
			}
			for _, de := range entries {
				if !listed[de.Name()] {
					t.Errorf("%s is shipped but not in the index", de.Name())
				}
			}
			if len(entries) != len(listed) {
				t.Errorf("%d files shipped, %d listed", len(entries), len(listed))
			}
		})
	}
}

func TestIssuerSets(t *testing.T) {
	// The counts line of the data set's issuers/INDEX.md.
	want := map[string]int{
		"actalis": 10, "amazon": 84, "buypass": 4, "certum": 18, "cloudflare": 10,
		"digicert": 188, "entrust": 20, "globalsign": 225, "godaddy": 5,
		"google-trust-services": 23, "harica": 47, "identrust": 5, "lets-encrypt": 28,
		"microsoft": 32, "sectigo": 56, "ssl-com": 52, "zerossl": 12,
	}
	owners := IssuerOwners()
	if len(owners) != len(want) {
		t.Errorf("IssuerOwners() = %q, want %d owners", owners, len(want))
	}
	total := 0
	for _, owner := range owners {
		t.Run(owner, func(t *testing.T) {
			raw, ok := IssuerSet(owner)
			if !ok {
				t.Fatal("IssuerSet: not found")
			}
			var set issuerSet
			if err := yaml.Unmarshal(raw, &set); err != nil {
				t.Fatal(err)
			}
			if set.Owner != owner || set.Name == "" {
				t.Errorf("owner %q, name %q", set.Owner, set.Name)
			}
			if n, ok := want[owner]; !ok || len(set.Issuers) != n {
				t.Errorf("%d issuers, INDEX.md counts %d", len(set.Issuers), n)
			}
			total += len(set.Issuers)
			seen := map[string]bool{}
			for i, is := range set.Issuers {
				if !sha256Hex.MatchString(is.CertSHA256) || !sha256Hex.MatchString(is.SPKISHA256) {
					t.Errorf("issuer %d: malformed hashes %q, %q", i, is.CertSHA256, is.SPKISHA256)
				}
				if is.Subject == "" || is.Source == "" {
					t.Errorf("issuer %d: subject %q, source %q", i, is.Subject, is.Source)
				}
				if seen[is.CertSHA256] {
					t.Errorf("issuer %d: certificate %s listed twice", i, is.CertSHA256)
				}
				seen[is.CertSHA256] = true
			}
		})
	}
	if total != 819 {
		t.Errorf("%d issuers in all, INDEX.md counts 819", total)
	}

	// A spot check against INDEX.md (openssl): Let's Encrypt R12.
	raw, _ := IssuerSet("lets-encrypt")
	var le issuerSet
	if err := yaml.Unmarshal(raw, &le); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(le.Issuers, func(is issuerEntry) bool {
		return is.Subject == "CN=R12,O=Let's Encrypt,C=US" && is.SPKISHA256 == r12SPKI
	}) {
		t.Errorf("lets-encrypt has no R12 with SPKI %s", r12SPKI)
	}
}

func TestLookupsRefuseOtherFiles(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"missing feed", ok(Feed("no-such-feed"))},
		{"feed path", ok(Feed("../issuers/lets-encrypt"))},
		{"feed subfolder", ok(Feed("interception-cas/x"))},
		{"empty feed", ok(Feed(""))},
		{"cert of missing feed", ok(FeedCert("no-such-feed", "kz-isca-2024.pem"))},
		{"cert of other feed", ok(FeedCert("distrusted-cas", "kz-isca-2024.pem"))},
		{"cert path", ok(FeedCert("interception-cas", "../distrusted-cas/cn-cnnic-root.pem"))},
		{"index as cert", ok(FeedCert("interception-cas", "../interception-cas.yaml"))},
		{"dot dot feed", ok(FeedCert("..", "SOURCE.md"))},
		{"missing owner", ok(IssuerSet("no-such-ca"))},
		{"owner path", ok(IssuerSet("../feeds/interception-cas"))},
		{"source note", ok(IssuerSet("SOURCE"))},
	} {
		if tt.ok {
			t.Errorf("%s: found", tt.name)
		}
	}
	if !ok(FeedCert("interception-cas", "kz-isca-2024.pem")) {
		t.Error("a listed certificate is not found")
	}
}

func TestLookupsReturnCopies(t *testing.T) {
	a, _ := Feed("interception-cas")
	clear(a)
	b, _ := Feed("interception-cas")
	if len(b) == 0 || b[0] == 0 {
		t.Error("modifying one Feed result changed the next")
	}
	n := FeedNames()
	n[0] = "changed"
	if FeedNames()[0] == "changed" {
		t.Error("modifying FeedNames' result changed the next")
	}
}

func ok(_ []byte, found bool) bool { return found }

// r12SPKI is Let's Encrypt R12's SPKI SHA-256 as the data set's INDEX.md
// gives it.
const r12SPKI = "919c0df7a787b597ed056ace654b1de9c0387acf349f73734a4fd7b58cf612a4"

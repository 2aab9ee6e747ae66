package rules

import "testing"

// cnKeyDNs are DNs that start with a CN in every way the fast path of
// cnKey must tell apart, and DNs it leaves to dnAttrs.
var cnKeyDNs = []string{
	"CN=E5,O=Let's Encrypt,C=US", "CN=E5", "CN= E5 ,O=x", "CN=", "CN=,O=x", "CN=a+O=b", "CN=a;O=b",
	`CN=a\,b,O=x`, `CN=\#a`, "CN=#0c024535", "CN= #0c024535", "CN=Qaznet Trust Network,C=KZ",
	"CN=a=b,O=c", "cn=E5,O=x", "O=x,CN=E5", "CN =E5", " CN=E5", "", "CN", "CN=E5\\", "CN=ÉCOLE,O=x",
}

// TestCNKeyFastPath holds cnKey's fast path for DNs that start with a CN
// to what dnAttrs yields.
func TestCNKeyFastPath(t *testing.T) {
	for _, dn := range cnKeyDNs {
		if got, want := cnKey(dn), cnKeyAttrs(dn); got != want {
			t.Errorf("cnKey(%q) = %x, want %x", dn, got, want)
		}
	}
}

func FuzzCNKey(f *testing.F) {
	for _, dn := range cnKeyDNs {
		f.Add(dn)
	}
	f.Fuzz(func(t *testing.T, dn string) {
		if got, want := cnKey(dn), cnKeyAttrs(dn); got != want {
			t.Errorf("cnKey(%q) = %x, want %x", dn, got, want)
		}
	})
}

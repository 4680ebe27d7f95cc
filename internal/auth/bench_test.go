package auth

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkKey: one handshake or REST request's key check against a file of n keys (every digest
// is compared, whichever matches).
func BenchmarkKey(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var entries []string
			for i := range n {
				entries = append(entries, fmt.Sprintf(`{"id":"k%d","sha256":"%s","publish":["*"]}`, i, digest(fmt.Sprintf("key-%d-0123456789", i))))
			}
			keys, err := parseKeyFile([]byte(`{"keys":[` + strings.Join(entries, ",") + `]}`))
			if err != nil {
				b.Fatal(err)
			}
			a := &Authenticator{keys: keys, now: time.Now}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Key("key-0-0123456789"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkToken: verifying a browser's token on its handshake.
func BenchmarkToken(b *testing.B) {
	a := &Authenticator{tokenKey: []byte(testTokenKey), now: time.Now}
	tok, err := Mint(a.tokenKey, "alice", Grant{Subscribe: []string{"chat.*"}}, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Token(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScope: the uncached per-frame decision for a principal with a few patterns.
func BenchmarkScope(b *testing.B) {
	p, err := NewPrincipal("x", Grant{Publish: []string{"a.*", "b.*", "orders", "c.*"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !p.CanPublish("c.eu.1") {
			b.Fatal("refused")
		}
	}
}

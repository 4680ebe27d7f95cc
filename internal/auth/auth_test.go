package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pubsubd/pubsub/internal/domain"
)

const (
	testKey      = "ingest-key-0123456789"
	testTokenKey = "0123456789abcdef0123456789abcdef-token-key"
)

func digest(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:])
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPatterns(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		topic    domain.TopicName
		want     bool
	}{
		{"star matches all", []string{"*"}, "anything", true},
		{"exact", []string{"orders"}, "orders", true},
		{"exact is not a prefix", []string{"orders"}, "orders.eu", false},
		{"prefix", []string{"orders.*"}, "orders.eu", true},
		{"prefix needs the dot", []string{"orders.*"}, "orders", false},
		{"prefix does not match others", []string{"orders.*"}, "payments.eu", false},
		{"one of many", []string{"a", "b.*", "c"}, "b.x", true},
		{"none", nil, "orders", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPrincipal("x", Grant{Publish: tt.patterns, Subscribe: tt.patterns})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.CanPublish(tt.topic); got != tt.want {
				t.Errorf("CanPublish(%q) with %q = %v, want %v", tt.topic, tt.patterns, got, tt.want)
			}
			if got := p.CanSubscribe(tt.topic); got != tt.want {
				t.Errorf("CanSubscribe(%q) with %q = %v, want %v", tt.topic, tt.patterns, got, tt.want)
			}
		})
	}
	for _, bad := range []string{"a*b", "**", "", "sp ace", "*.orders"} {
		if _, err := NewPrincipal("x", Grant{Publish: []string{bad}}); err == nil {
			t.Errorf("pattern %q accepted, want an error", bad)
		}
	}
}

func TestKeyFile(t *testing.T) {
	good := `{"keys":[{"id":"ingest","sha256":"` + digest(testKey) + `","publish":["orders.*"],"subscribe":["*"],"manage":false},
		{"id":"admin","sha256":"` + digest("admin-key-0123456789") + `","manage":true}]}`
	a, err := Load(Settings{KeysFile: writeFile(t, "keys.json", good)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Key(testKey)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID() != "ingest" || !p.CanPublish("orders.eu") || p.CanPublish("payments") || !p.CanSubscribe("x") || p.CanManage() {
		t.Errorf("ingest principal %+v has the wrong scopes", p)
	}
	p, err = a.Key("admin-key-0123456789")
	if err != nil || p.ID() != "admin" || !p.CanManage() || p.CanPublish("orders") {
		t.Errorf("admin principal %+v, %v: wrong scopes", p, err)
	}
	var f *Failure
	if _, err := a.Key("wrong-key-0123456789"); !errors.As(err, &f) || f.Reason != ReasonInvalid || domain.KindOf(err) != domain.KindUnauthorized {
		t.Errorf("wrong key: %v, want an invalid Failure of kind unauthorized", err)
	}

	malformed := map[string]string{
		"not json":           `{"keys":[`,
		"no keys":            `{"keys":[]}`,
		"unknown field":      `{"keys":[{"id":"a","sha256":"` + digest("k") + `","publsh":["*"]}]}`,
		"missing id":         `{"keys":[{"sha256":"` + digest("k") + `"}]}`,
		"short digest":       `{"keys":[{"id":"a","sha256":"abcd"}]}`,
		"not hex":            `{"keys":[{"id":"a","sha256":"` + strings.Repeat("z", 64) + `"}]}`,
		"duplicate id":       `{"keys":[{"id":"a","sha256":"` + digest("k1") + `"},{"id":"a","sha256":"` + digest("k2") + `"}]}`,
		"duplicate key":      `{"keys":[{"id":"a","sha256":"` + digest("k1") + `"},{"id":"b","sha256":"` + digest("k1") + `"}]}`,
		"bad pattern":        `{"keys":[{"id":"a","sha256":"` + digest("k") + `","publish":["a*b"]}]}`,
		"the plain key file": `{"keys":[{"id":"a","key":"secret"}]}`,
	}
	for name, content := range malformed {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, "keys.json", content)
			_, err := Load(Settings{KeysFile: path})
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("Load: %v, want an error naming %s", err, path)
			}
		})
	}
	if _, err := Load(Settings{KeysFile: filepath.Join(t.TempDir(), "absent.json")}); err == nil {
		t.Error("a missing keys file was accepted")
	}
}

func TestSingleKeyAndOff(t *testing.T) {
	a, err := Load(Settings{})
	if a != nil || err != nil {
		t.Fatalf("Load with nothing set = %v, %v; want nil, nil (off)", a, err)
	}
	p, err := a.Request(httptest.NewRequest("GET", "/topics", nil), true)
	if p != Anonymous || err != nil {
		t.Errorf("off: Request = %v, %v; want Anonymous", p, err)
	}
	a, err = Load(Settings{APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	p, err = a.Key(testKey)
	if err != nil || p.ID() != SingleKeyID || !p.CanManage() || !p.Unrestricted() {
		t.Errorf("single key principal %+v, %v: want api-key with every scope", p, err)
	}
}

// TestKeyComparesInConstantTime: Key must compare digests with crypto/subtle and never with ==
// or bytes.Equal, which stop at the first differing byte. A timing test would be flaky on a
// shared machine; the source is the contract.
func TestKeyComparesInConstantTime(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "authenticator.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var key *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "Key" {
			key = fd
		}
	}
	if key == nil {
		t.Fatal("no func Key in authenticator.go")
	}
	var subtleCalls int
	ast.Inspect(key.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok {
				switch {
				case id.Name == "subtle" && n.Sel.Name == "ConstantTimeCompare":
					subtleCalls++
				case id.Name == "bytes", id.Name == "hmac":
					t.Errorf("Key uses %s.%s", id.Name, n.Sel.Name)
				}
			}
		case *ast.BranchStmt:
			t.Errorf("Key leaves its loop early (%s): the time would tell which key matched", n.Tok)
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				lit, isLit := n.Y.(*ast.BasicLit)
				nilID, isNil := n.Y.(*ast.Ident)
				if !(isLit && lit.Kind == token.INT) && !(isNil && nilID.Name == "nil") {
					t.Errorf("Key compares with %s on something other than a constant", n.Op)
				}
			}
		}
		return true
	})
	if subtleCalls == 0 {
		t.Error("Key does not call subtle.ConstantTimeCompare")
	}
}

func tokenAuth(t *testing.T, now time.Time) *Authenticator {
	t.Helper()
	a, err := Load(Settings{TokenKeyFile: writeFile(t, "token.key", testTokenKey+"\n")})
	if err != nil {
		t.Fatal(err)
	}
	a.now = func() time.Time { return now }
	return a
}

func TestToken(t *testing.T) {
	now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	a := tokenAuth(t, now)
	key := []byte(testTokenKey)
	g := Grant{Publish: []string{"chat.*"}, Subscribe: []string{"chat.*", "news"}}
	tok, err := Mint(key, "alice", g, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Token(tok)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if p.ID() != "alice" || !p.CanPublish("chat.1") || p.CanPublish("news") || !p.CanSubscribe("news") || p.CanManage() {
		t.Errorf("token principal %+v has the wrong scopes", p)
	}

	sign := func(method jwt.SigningMethod, k any, c jwt.Claims) string {
		s, err := jwt.NewWithClaims(method, c).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	claims := func(sub string, iat, exp time.Time) Claims {
		c := Claims{Pubsub: g}
		c.Subject = sub
		if !iat.IsZero() {
			c.IssuedAt = jwt.NewNumericDate(iat)
		}
		if !exp.IsZero() {
			c.ExpiresAt = jwt.NewNumericDate(exp)
		}
		return c
	}
	bad := map[string]string{
		"expired":            sign(jwt.SigningMethodHS256, key, claims("alice", now.Add(-2*time.Hour), now.Add(-time.Minute))),
		"no expiry":          sign(jwt.SigningMethodHS256, key, claims("alice", now, time.Time{})),
		"too long a life":    sign(jwt.SigningMethodHS256, key, claims("alice", now, now.Add(48*time.Hour))),
		"no subject":         sign(jwt.SigningMethodHS256, key, claims("", now, now.Add(time.Hour))),
		"other key":          sign(jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), claims("alice", now, now.Add(time.Hour))),
		"HS512 not accepted": sign(jwt.SigningMethodHS512, key, claims("alice", now, now.Add(time.Hour))),
		"alg none":           sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("alice", now, now.Add(time.Hour))),
		"issued in future":   sign(jwt.SigningMethodHS256, key, claims("alice", now.Add(time.Hour), now.Add(2*time.Hour))),
		"garbage":            "not.a.token",
		"huge":               strings.Repeat("a", maxTokenBytes+1),
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			var f *Failure
			if _, err := a.Token(tok); !errors.As(err, &f) || f.Reason != ReasonInvalid {
				t.Errorf("Token: %v, want an invalid Failure", err)
			}
		})
	}
	// Within the leeway, a token just past its expiry still passes: clocks disagree a little.
	p, err = tokenAuth(t, now.Add(time.Hour+10*time.Second)).Token(tok)
	if err != nil || p.ID() != "alice" {
		t.Errorf("token 10s past expiry: %v, want accepted within the leeway", err)
	}
	if _, err := Mint(key, "alice", g, 25*time.Hour, now); err == nil {
		t.Error("Mint accepted a lifetime over the maximum")
	}
	if _, err := Mint([]byte("short"), "alice", g, time.Hour, now); err == nil {
		t.Error("Mint accepted a short key")
	}
	if _, err := Load(Settings{TokenKeyFile: writeFile(t, "short.key", "short\n")}); err == nil {
		t.Error("Load accepted a short token key")
	}
	withoutTokens, _ := Load(Settings{APIKey: testKey})
	if _, err := withoutTokens.Token(tok); err == nil {
		t.Error("a server without a token key accepted a token")
	}
}

func TestRequest(t *testing.T) {
	now := time.Now()
	a, err := Load(Settings{APIKey: testKey, TokenKeyFile: writeFile(t, "token.key", testTokenKey)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Mint([]byte(testTokenKey), "browser", Grant{Subscribe: []string{"*"}}, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		header       map[string]string
		subprotocols bool
		wantID       string
		wantReason   Reason
	}{
		{"nothing", nil, true, "", ReasonMissing},
		{"key", map[string]string{"X-API-Key": testKey}, false, SingleKeyID, ""},
		{"wrong key", map[string]string{"X-API-Key": "nope"}, false, "", ReasonInvalid},
		{"key wins over a token", map[string]string{"X-API-Key": "nope", "Authorization": "Bearer " + tok}, false, "", ReasonInvalid},
		{"bearer", map[string]string{"Authorization": "Bearer " + tok}, false, "browser", ""},
		{"basic is not bearer", map[string]string{"Authorization": "Basic abc"}, false, "", ReasonInvalid},
		{"subprotocol token", map[string]string{"Sec-WebSocket-Protocol": "pubsub, pubsub.token." + tok}, true, "browser", ""},
		{"subprotocol only on the handshake", map[string]string{"Sec-WebSocket-Protocol": "pubsub, pubsub.token." + tok}, false, "", ReasonMissing},
		{"subprotocol without token", map[string]string{"Sec-WebSocket-Protocol": "pubsub"}, true, "", ReasonMissing},
		{"bad subprotocol token", map[string]string{"Sec-WebSocket-Protocol": "pubsub, pubsub.token.x.y.z"}, true, "", ReasonInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/ws", nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			p, err := a.Request(r, tt.subprotocols)
			if tt.wantReason != "" {
				var f *Failure
				if !errors.As(err, &f) || f.Reason != tt.wantReason {
					t.Fatalf("Request: %v, %v; want a %s Failure", p, err, tt.wantReason)
				}
				if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "nope") {
					t.Errorf("the message %q repeats the credential", err)
				}
				return
			}
			if err != nil || p.ID() != tt.wantID {
				t.Fatalf("Request: %v, %v; want principal %q", p, err, tt.wantID)
			}
		})
	}
}

package httpapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/transport/httpapi"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
	"github.com/pubsubd/pubsub/telemetry/telemetrytest"
)

const (
	adminKey  = "admin-key-0123456789abcdef"
	readerKey = "reader-key-0123456789abcdef"
	tokenKey  = "token-signing-key-0123456789abcdef0123"
)

// authFixture is the limits fixture (the router over the real service) with authentication on.
type authFixture struct{ *fixture }

// newAuthFixture serves the router with authentication on: an admin key (every scope), a reader
// key (subscribe only, no manage) and tokens.
func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	dir := t.TempDir()
	sum := func(k string) string { d := sha256.Sum256([]byte(k)); return hex.EncodeToString(d[:]) }
	keys := `{"keys":[{"id":"admin","sha256":"` + sum(adminKey) + `","publish":["*"],"subscribe":["*"],"manage":true},
		{"id":"reader","sha256":"` + sum(readerKey) + `","subscribe":["*"]}]}`
	keysFile, tokenFile := filepath.Join(dir, "keys.json"), filepath.Join(dir, "token.key")
	if err := os.WriteFile(keysFile, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(tokenKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	authn, err := auth.Load(auth.Settings{KeysFile: keysFile, TokenKeyFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	f := &authFixture{newLimitsFixture(t, httpapi.Options{Auth: authn})}
	if status, _, raw := f.do(t, http.MethodPost, "/topics", `{"name":"existing"}`, "X-API-Key", adminKey); status != http.StatusCreated {
		t.Fatalf("creating the fixture's topic: %d %s", status, raw)
	}
	return f
}

func (f *authFixture) authFailures(t *testing.T, reason string) float64 {
	t.Helper()
	m, err := telemetrytest.Series(f.tel.Metrics.Registry, "pubsub_auth_failures_total", map[string]string{"reason": reason})
	if err != nil {
		t.Fatal(err)
	}
	return telemetrytest.Value(m)
}

func (f *authFixture) request(t *testing.T, method, path, body string, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	var pairs []string
	for k, vs := range header {
		for _, v := range vs {
			pairs = append(pairs, k, v)
		}
	}
	status, h, raw := f.do(t, method, path, body, pairs...)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, path, raw, err)
	}
	return status, h, out
}

// TestRESTAuthentication: every REST operation without a key, with a wrong key, with a key
// lacking the scope and with the right key (or token); each refusal is 401 UNAUTHORIZED with a
// challenge, counted by reason, and logged without the credential.
func TestRESTAuthentication(t *testing.T) {
	f := newAuthFixture(t)
	token, err := auth.Mint([]byte(tokenKey), "ops", auth.Grant{Manage: true}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	expired, err := auth.Mint([]byte(tokenKey), "ops", auth.Grant{Manage: true}, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key := func(k string) http.Header { return http.Header{"X-Api-Key": {k}} }
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	type op struct{ method, path, body string }
	create := op{"POST", "/topics", `{"name":"orders"}`}
	deleteOp := op{"DELETE", "/topics/existing", ""}
	list := op{"GET", "/topics", ""}
	stats := op{"GET", "/stats", ""}
	health := op{"GET", "/health", ""}
	tests := []struct {
		name   string
		op     op
		header http.Header
		status int    // want
		reason string // the counted reason when refused
	}{
		{"create without a key", create, nil, 401, telemetry.AuthMissing},
		{"create with a wrong key", create, key("wrong-key-0123456789"), 401, telemetry.AuthInvalid},
		{"create without manage", create, key(readerKey), 401, telemetry.AuthScope},
		{"create with manage", create, key(adminKey), 201, ""},
		{"delete without a key", deleteOp, nil, 401, telemetry.AuthMissing},
		{"delete with a wrong key", deleteOp, key("wrong-key-0123456789"), 401, telemetry.AuthInvalid},
		{"delete without manage", deleteOp, key(readerKey), 401, telemetry.AuthScope},
		{"delete with an expired token", deleteOp, bearer(expired), 401, telemetry.AuthInvalid},
		{"delete with a token", deleteOp, bearer(token), 200, ""},
		{"list without a key", list, nil, 401, telemetry.AuthMissing},
		{"list with a wrong key", list, key("wrong-key-0123456789"), 401, telemetry.AuthInvalid},
		{"list with any valid key", list, key(readerKey), 200, ""},
		{"stats without a key", stats, nil, 401, telemetry.AuthMissing},
		{"stats with a key", stats, key(readerKey), 200, ""},
		{"health without a key", health, nil, 401, telemetry.AuthMissing},
		{"health with a token", health, bearer(token), 200, ""},
		{"livez stays open", op{"GET", "/livez", ""}, nil, 200, ""},
		{"readyz stays open", op{"GET", "/readyz", ""}, nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before float64
			if tt.reason != "" {
				before = f.authFailures(t, tt.reason)
			}
			status, header, body := f.request(t, tt.op.method, tt.op.path, tt.op.body, tt.header)
			if status != tt.status {
				t.Fatalf("%s %s: %d %v, want %d", tt.op.method, tt.op.path, status, body, tt.status)
			}
			if tt.reason == "" {
				return
			}
			e, _ := body["error"].(map[string]any)
			if e["code"] != wire.CodeUnauthorized || e["message"] == "" {
				t.Errorf("body %v, want the contract's UNAUTHORIZED error", body)
			}
			if header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
			if got := f.authFailures(t, tt.reason); got != before+1 {
				t.Errorf("pubsub_auth_failures_total{reason=%q} went %v -> %v, want +1", tt.reason, before, got)
			}
		})
	}
	if logs := f.logs.String(); strings.Contains(logs, "wrong-key-0123456789") || strings.Contains(logs, readerKey) || strings.Contains(logs, expired) {
		t.Error("a credential reached the log")
	}
	if !strings.Contains(f.logs.String(), "http request refused") {
		t.Error("refusals were not logged")
	}
}

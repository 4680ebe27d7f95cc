package auth_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/auth"
)

// TestTokenRequest: the flags both commands share mint a token the server's authenticator, loaded
// from the same key file, accepts with the scopes asked for; bad requests are refused with a reason.
func TestTokenRequest(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := os.WriteFile(keyFile, []byte("token-signing-key-0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short.key")
	if err := os.WriteFile(short, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mint := func(args ...string) (string, error) {
		fs := flag.NewFlagSet("token", flag.ContinueOnError)
		var req auth.TokenRequest
		req.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		return req.Mint(time.Now())
	}
	tok, err := mint("-key-file", keyFile, "-sub", "web", "-ttl", "15m", "-subscribe", "orders.*, news", "-publish", "chat.*", "-manage")
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.Load(auth.Settings{TokenKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Token(tok)
	if err != nil {
		t.Fatalf("the minted token is refused: %v", err)
	}
	if p.ID() != "web" || !p.CanSubscribe("news") || !p.CanSubscribe("orders.eu") || !p.CanPublish("chat.1") || p.CanPublish("news") || !p.CanManage() {
		t.Errorf("minted principal has the wrong scopes: %+v", p)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-sub", "web"}, "-key-file and -sub are required"},
		{[]string{"-key-file", keyFile}, "-key-file and -sub are required"},
		{[]string{"-key-file", keyFile, "-sub", "w", "-ttl", "48h"}, "lifetime"},
		{[]string{"-key-file", keyFile, "-sub", "w", "-publish", "a*b"}, "a*b"},
		{[]string{"-key-file", short, "-sub", "w"}, "at least 32 are needed"},
		{[]string{"-key-file", filepath.Join(t.TempDir(), "absent"), "-sub", "w"}, "no such file"},
	} {
		if _, err := mint(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("token %q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestSplitPatterns(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,", nil},
		{"orders.*, news", []string{"orders.*", "news"}},
		{"a,b,", []string{"a", "b"}},
	} {
		if got := auth.SplitPatterns(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SplitPatterns(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

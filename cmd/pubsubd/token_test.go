package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/logbuffer"
)

// TestMintToken: "pubsubd token" prints a token that a server with the same key file accepts,
// with the scopes asked for; bad flags are configuration errors.
func TestMintToken(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := os.WriteFile(keyFile, []byte("token-signing-key-0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut logbuffer.Buffer
	err := mintToken([]string{"-key-file", keyFile, "-sub", "web", "-ttl", "15m", "-subscribe", "orders.*, news", "-publish", "chat.*"}, &out, &errOut)
	if err != nil {
		t.Fatalf("token: %v; stderr %s", err, errOut.String())
	}
	a, err := auth.Load(auth.Settings{TokenKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Token(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("the minted token is refused: %v", err)
	}
	if p.ID() != "web" || !p.CanSubscribe("news") || !p.CanSubscribe("orders.eu") || !p.CanPublish("chat.1") || p.CanPublish("news") || p.CanManage() {
		t.Errorf("minted principal has the wrong scopes: %+v", p)
	}
	for _, args := range [][]string{
		{"-sub", "web"},        // no key file
		{"-key-file", keyFile}, // no subject
		{"-key-file", keyFile, "-sub", "w", "-ttl", "48h"}, // too long
		{"-key-file", keyFile, "-sub", "w", "-publish", "a*b"},
		{"-bogus"},
	} {
		var cfgErr *config.Error
		if err := mintToken(args, &out, &errOut); !errors.As(err, &cfgErr) {
			t.Errorf("token %q: %v, want a configuration error", args, err)
		}
	}
}

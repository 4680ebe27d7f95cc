package app_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/config"
)

// TestNewRefusesUnusableSecrets: a keys file or token key that cannot be used is a configuration
// error naming the file (pubsubd exits 2), found before anything is built.
func TestNewRefusesUnusableSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := map[string]config.Auth{
		"malformed keys file": {KeysFile: write("bad.json", `{"keys":[{"id":"a","sha256":"nothex"}]}`)},
		"not JSON":            {KeysFile: write("notjson.json", `keys: []`)},
		"missing keys file":   {KeysFile: filepath.Join(dir, "absent.json")},
		"short token key":     {TokenKeyFile: write("short.key", "short")},
	}
	for name, a := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Auth = a
			_, err := app.New(cfg, app.Options{LogOutput: io.Discard})
			var cfgErr *config.Error
			if !errors.As(err, &cfgErr) {
				t.Fatalf("err = %v, want a *config.Error", err)
			}
			if file := a.KeysFile + a.TokenKeyFile; !strings.Contains(err.Error(), filepath.Base(file)) {
				t.Errorf("error %q does not name %s", err, file)
			}
		})
	}
}

package auth

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// ReadTokenKey reads the token signing secret from path the way the server does, so that a token
// minted from the file (pubsubd token, pubsubctl token) is signed with exactly the key the server
// verifies with.
func ReadTokenKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token key file: %w", err)
	}
	// A Secret written with echo ends with a newline that is not part of the key.
	key := bytes.TrimSpace(data)
	if len(key) < MinTokenKeyBytes {
		return nil, fmt.Errorf("token key file %s: the key has %d bytes; at least %d are needed", path, len(key), MinTokenKeyBytes)
	}
	return key, nil
}

// SplitPatterns splits a comma-separated list of topic patterns, dropping blanks, so that
// "orders.*, news" and "orders.*,news," mean the same.
func SplitPatterns(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// TokenRequest is what an operator asks a token for: the command-line form of Mint's arguments.
// pubsubd token and pubsubctl token both fill it with RegisterFlags, so the two commands take the
// same flags and mint the same tokens.
type TokenRequest struct {
	KeyFile   string        // the server's PUBSUB_TOKEN_KEY_FILE
	Subject   string        // the principal
	TTL       time.Duration // at most MaxTokenLifetime
	Publish   string        // comma-separated topic patterns
	Subscribe string        // comma-separated topic patterns
	Manage    bool
}

// RegisterFlags defines -key-file, -sub, -ttl, -publish, -subscribe and -manage on fs, bound to r.
func (r *TokenRequest) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&r.KeyFile, "key-file", "", "the token key file (PUBSUB_TOKEN_KEY_FILE of the servers)")
	fs.StringVar(&r.Subject, "sub", "", "the principal the token acts for (its subscriptions belong to it)")
	fs.DurationVar(&r.TTL, "ttl", time.Hour, fmt.Sprintf("how long the token is valid (at most %s)", MaxTokenLifetime))
	fs.StringVar(&r.Publish, "publish", "", "comma-separated topic patterns it may publish to (name, prefix.*, *)")
	fs.StringVar(&r.Subscribe, "subscribe", "", "comma-separated topic patterns it may subscribe to")
	fs.BoolVar(&r.Manage, "manage", false, "whether it may create and delete topics")
}

// Mint checks r, reads its key file and signs the token, valid from now.
func (r TokenRequest) Mint(now time.Time) (string, error) {
	if r.KeyFile == "" || r.Subject == "" {
		return "", fmt.Errorf("-key-file and -sub are required")
	}
	key, err := ReadTokenKey(r.KeyFile)
	if err != nil {
		return "", err
	}
	g := Grant{Publish: SplitPatterns(r.Publish), Subscribe: SplitPatterns(r.Subscribe), Manage: r.Manage}
	return Mint(key, r.Subject, g, r.TTL, now)
}

package main

import (
	"time"

	"github.com/pubsubd/pubsub/internal/auth"
)

// tokenCmd mints a browser token with auth.TokenRequest, exactly as "pubsubd token" does: no
// server is contacted, only the key file the servers read (PUBSUB_TOKEN_KEY_FILE) is needed.
func tokenCmd(e *env, args []string) error {
	fs := newFlags(e, "token", "token -key-file F -sub NAME [-ttl 1h] [-publish P,...] [-subscribe P,...] [-manage]",
		"Prints a signed token (JWT, HS256) for a browser, which offers it as the WebSocket subprotocol\n"+
			"\"pubsub.token.<token>\" beside \"pubsub\". Topic patterns: a name, a prefix ending in *, or *.\n"+
			"Output: the token, or with -o json {\"token\":T,\"sub\":NAME,\"expires\":RFC3339}.\n")
	var req auth.TokenRequest
	req.RegisterFlags(fs)
	output := fs.String("o", "text", "output: text or json")
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("token takes no arguments, got %q", pos)
	}
	if *output != "text" && *output != "json" {
		return usageErr("-o must be text or json, not %q", *output)
	}
	now := time.Now()
	tok, err := req.Mint(now)
	if err != nil {
		return usageErr("token: %v", err)
	}
	line := struct {
		Token   string `json:"token"`
		Sub     string `json:"sub"`
		Expires string `json:"expires"`
	}{tok, req.Subject, now.Add(req.TTL).UTC().Format(time.RFC3339)}
	return printer{e.stdout, *output == "json"}.line(line, tok)
}

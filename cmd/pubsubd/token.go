package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/config"
)

// mintToken is the "pubsubd token" subcommand: it prints a signed token for a browser client, for
// an operator (or the backend that serves the browser's page) to hand over. Flag errors are
// configuration errors (exit 2).
func mintToken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pubsubd token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key-file", "", "the token key file (PUBSUB_TOKEN_KEY_FILE of the servers)")
	sub := fs.String("sub", "", "the principal the token acts for (its subscriptions belong to it)")
	ttl := fs.Duration("ttl", time.Hour, fmt.Sprintf("how long the token is valid (at most %s)", auth.MaxTokenLifetime))
	publish := fs.String("publish", "", "comma-separated topic patterns it may publish to (name, prefix.*, *)")
	subscribe := fs.String("subscribe", "", "comma-separated topic patterns it may subscribe to")
	manage := fs.Bool("manage", false, "whether it may create and delete topics")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: pubsubd token -key-file F -sub NAME [-ttl 1h] [-publish P,...] [-subscribe P,...] [-manage]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &config.Error{Msg: err.Error()}
	}
	if *keyFile == "" || *sub == "" {
		return &config.Error{Msg: "token: -key-file and -sub are required"}
	}
	data, err := os.ReadFile(*keyFile)
	if err != nil {
		return &config.Error{Msg: "token: " + err.Error()}
	}
	g := auth.Grant{Publish: split(*publish), Subscribe: split(*subscribe), Manage: *manage}
	tok, err := auth.Mint([]byte(strings.TrimSpace(string(data))), *sub, g, *ttl, time.Now())
	if err != nil {
		return &config.Error{Msg: "token: " + err.Error()}
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

func split(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

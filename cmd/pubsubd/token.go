package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/config"
)

// mintToken is the "pubsubd token" subcommand: it prints a signed token for a browser client, for
// an operator (or the backend that serves the browser's page) to hand over. Its flags and the
// minting are auth.TokenRequest's, shared with "pubsubctl token". Flag errors are configuration
// errors (exit 2).
func mintToken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pubsubd token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var req auth.TokenRequest
	req.RegisterFlags(fs)
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
	tok, err := req.Mint(time.Now())
	if err != nil {
		return &config.Error{Msg: "token: " + err.Error()}
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// Settings name the secrets, as config.Auth carries them.
type Settings struct {
	APIKey       string // one key with every scope, principal "api-key"
	KeysFile     string // a KeyFile (JSON), e.g. mounted from a Kubernetes Secret
	TokenKeyFile string // the HMAC secret that signs and verifies tokens
}

// SingleKeyID is the principal of Settings.APIKey.
const SingleKeyID = "api-key"

// MinTokenKeyBytes is the shortest token signing secret accepted: HS256 with a short secret can be
// brute-forced offline from any token.
const MinTokenKeyBytes = 32

// KeyFile is the format of PUBSUB_API_KEYS_FILE:
//
//	{"keys":[{"id":"ingest","sha256":"<hex of sha256(key)>","publish":["orders.*"],"subscribe":["*"],"manage":false}]}
//
// Only digests are stored, so the file (and a leak of it) does not hold the keys themselves.
type KeyFile struct {
	Keys []KeyEntry `json:"keys"`
}

// KeyEntry is one key of a KeyFile: its principal id, the hex SHA-256 of the key, and its scopes.
type KeyEntry struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"`
	Grant
}

// Authenticator turns the credentials of a request into a Principal. Build it with Load; it is
// immutable and safe for concurrent use.
type Authenticator struct {
	keys     []storedKey
	tokenKey []byte // nil: tokens are not accepted
	now      func() time.Time
}

type storedKey struct {
	digest [sha256.Size]byte
	p      *Principal
}

// Load reads the secrets s names. It returns nil (authentication off) when s names none, and an
// error naming the file and what is wrong with it when one cannot be used.
func Load(s Settings) (*Authenticator, error) {
	if s.APIKey == "" && s.KeysFile == "" && s.TokenKeyFile == "" {
		return nil, nil
	}
	a := &Authenticator{now: time.Now}
	if s.APIKey != "" {
		p, _ := NewPrincipal(SingleKeyID, All) // All's patterns are valid
		a.keys = append(a.keys, storedKey{digest: sha256.Sum256([]byte(s.APIKey)), p: p})
	}
	if s.KeysFile != "" {
		data, err := os.ReadFile(s.KeysFile)
		if err != nil {
			return nil, fmt.Errorf("API keys file: %w", err)
		}
		keys, err := parseKeyFile(data)
		if err != nil {
			return nil, fmt.Errorf("API keys file %s: %w", s.KeysFile, err)
		}
		for _, k := range keys {
			if len(a.keys) > 0 && k.digest == a.keys[0].digest {
				// Which principal would it be? Refuse rather than guess.
				return nil, fmt.Errorf("API keys file %s: key %q is PUBSUB_API_KEY too", s.KeysFile, k.p.id)
			}
		}
		a.keys = append(a.keys, keys...)
	}
	if s.TokenKeyFile != "" {
		key, err := ReadTokenKey(s.TokenKeyFile)
		if err != nil {
			return nil, err
		}
		a.tokenKey = key
	}
	return a, nil
}

// parseKeyFile parses and checks a KeyFile: every entry needs a unique id, a 64-digit hex digest
// (unique too) and valid patterns; unknown fields are refused, so that a misspelt scope is an
// error at start rather than a key that silently may do nothing.
func parseKeyFile(data []byte) ([]storedKey, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f KeyFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf(`not a key file like {"keys":[{"id":"...","sha256":"...","publish":[...],"subscribe":[...],"manage":false}]}: %w`, err)
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("no keys")
	}
	ids := make(map[string]bool, len(f.Keys))
	digests := make(map[[sha256.Size]byte]bool, len(f.Keys))
	out := make([]storedKey, 0, len(f.Keys))
	for i, e := range f.Keys {
		if e.ID == "" {
			return nil, fmt.Errorf("key %d: id is required", i+1)
		}
		if ids[e.ID] {
			return nil, fmt.Errorf("key %q: the id is used twice", e.ID)
		}
		ids[e.ID] = true
		var d [sha256.Size]byte
		if n, err := hex.Decode(d[:], []byte(e.SHA256)); err != nil || n != sha256.Size || len(e.SHA256) != 2*sha256.Size {
			return nil, fmt.Errorf("key %q: sha256 must be the 64 hex digits of the key's SHA-256", e.ID)
		}
		if digests[d] {
			return nil, fmt.Errorf("key %q: the same key is listed twice", e.ID)
		}
		digests[d] = true
		p, err := NewPrincipal(e.ID, e.Grant)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", e.ID, err)
		}
		out = append(out, storedKey{digest: d, p: p})
	}
	return out, nil
}

// Key returns the principal of an API key. The key's digest is compared with every stored digest
// in constant time, and the loop does not stop at a match, so neither the time taken nor its
// variation tells an attacker how much of a guess was right, or which key it was close to.
func (a *Authenticator) Key(key string) (*Principal, error) {
	d := sha256.Sum256([]byte(key))
	var found *Principal
	for i := range a.keys {
		if subtle.ConstantTimeCompare(d[:], a.keys[i].digest[:]) == 1 {
			found = a.keys[i].p
		}
	}
	if found == nil {
		return nil, fail(ReasonInvalid, "the API key is not valid")
	}
	return found, nil
}

// Header names and the subprotocol a browser offers a token in.
const (
	// Challenge is the WWW-Authenticate header of a refused request or handshake: the two ways a
	// client may authenticate.
	Challenge = `APIKey realm="pubsub", header="X-API-Key", Bearer realm="pubsub"`

	HeaderAPIKey = "X-API-Key"
	// Protocol is the WebSocket subprotocol the server selects; a token comes beside it as
	// TokenProtocolPrefix + jwt, and is never echoed back.
	Protocol            = "pubsub"
	TokenProtocolPrefix = "pubsub.token."
)

// Request authenticates r. A nil Authenticator (authentication off) returns Anonymous. Otherwise
// the credential is, in this order: the X-API-Key header; an "Authorization: Bearer" token; and,
// when subprotocols is true (the WebSocket handshake), a token offered as a subprotocol
// "pubsub.token.<jwt>". The first one present is the only one tried.
func (a *Authenticator) Request(r *http.Request, subprotocols bool) (*Principal, error) {
	if a == nil {
		return Anonymous, nil
	}
	if v := r.Header.Values(HeaderAPIKey); len(v) > 0 {
		if len(v) > 1 {
			return nil, fail(ReasonInvalid, "send one %s header", HeaderAPIKey)
		}
		return a.Key(v[0])
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, fail(ReasonInvalid, "the Authorization header must be \"Bearer <token>\"")
		}
		return a.Token(strings.TrimSpace(tok))
	}
	if subprotocols {
		for _, p := range websocketProtocols(r) {
			if tok, ok := strings.CutPrefix(p, TokenProtocolPrefix); ok {
				return a.Token(tok)
			}
		}
	}
	return nil, fail(ReasonMissing, "authentication required: send an %s header or a token", HeaderAPIKey)
}

// websocketProtocols lists the subprotocols a handshake offers, as gorilla's Subprotocols does.
func websocketProtocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

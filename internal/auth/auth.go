// Package auth authenticates clients and says what they may do. A client presents an API key (the
// X-API-Key header) or a signed short-lived token (Authorization: Bearer, or, for browsers, which
// cannot set headers on the WebSocket handshake, a "pubsub.token.<jwt>" subprotocol); either one
// becomes a Principal: an identity and its scopes, the topics it may publish to and subscribe to
// and whether it may create and delete topics.
//
// Keys are kept only as SHA-256 digests and compared in constant time; a token is an HS256 JWT
// whose expiry is required and bounded. Nothing here logs or returns a secret. The transports ask
// an Authenticator once per request or handshake and the Principal on every operation.
package auth

import (
	"fmt"
	"strings"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Reason says why a client was refused; the values are those of the auth failures metric's
// reason label.
type Reason string

// The reasons of a refusal.
const (
	ReasonMissing Reason = "missing" // no key and no token
	ReasonInvalid Reason = "invalid" // a key or token that is not ours, or an expired token
	ReasonScope   Reason = "scope"   // a valid principal without the scope for the operation
)

// Failure is a refused authentication or authorization. It unwraps to a domain error of kind
// KindUnauthorized, so the transports' one error table answers it (401, UNAUTHORIZED). Msg is
// meant for the client and never holds the secret that was presented.
type Failure struct {
	Reason Reason
	err    *domain.Error
}

func fail(r Reason, format string, args ...any) *Failure {
	return &Failure{Reason: r, err: &domain.Error{Kind: domain.KindUnauthorized, Msg: fmt.Sprintf(format, args...)}}
}

// Error returns the message for the client.
func (f *Failure) Error() string { return f.err.Msg }

// Unwrap returns the classified domain error.
func (f *Failure) Unwrap() error { return f.err }

// Grant is a set of scopes, as a key file entry and a token's "pubsub" claim spell them. Publish
// and Subscribe are topic patterns (see Pattern); Manage allows creating and deleting topics.
type Grant struct {
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
	Manage    bool     `json:"manage,omitempty"`
}

// All is the grant of every scope: the single PUBSUB_API_KEY, and everyone when authentication
// is off.
var All = Grant{Publish: []string{"*"}, Subscribe: []string{"*"}, Manage: true}

// Principal is an authenticated identity and what it may do. A Principal is immutable and safe
// for concurrent use; its zero value may do nothing.
type Principal struct {
	id                 string
	publish, subscribe scope
	manage             bool
}

// Anonymous is everyone's principal when authentication is off: the empty id, every scope. Since
// all connections then share it, any of them may take over any client_id, as before auth existed.
var Anonymous = &Principal{id: "", publish: scope{all: true}, subscribe: scope{all: true}, manage: true}

// NewPrincipal returns the principal id with the scopes of g, or an error naming a bad pattern.
func NewPrincipal(id string, g Grant) (*Principal, error) {
	pub, err := parseScope(g.Publish)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	sub, err := parseScope(g.Subscribe)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return &Principal{id: id, publish: pub, subscribe: sub, manage: g.Manage}, nil
}

// ID returns the principal's identity: a key's id, a token's subject, "api-key" for the single
// key, "" for Anonymous. Subscriptions belong to it.
func (p *Principal) ID() string { return p.id }

// CanPublish reports whether p may publish to topic.
func (p *Principal) CanPublish(topic domain.TopicName) bool { return p.publish.match(string(topic)) }

// CanSubscribe reports whether p may subscribe to topic (and unsubscribe from it).
func (p *Principal) CanSubscribe(topic domain.TopicName) bool {
	return p.subscribe.match(string(topic))
}

// CanManage reports whether p may create and delete topics.
func (p *Principal) CanManage() bool { return p.manage }

// Unrestricted reports whether p may publish and subscribe to every topic, so that a transport
// need not check (or cache) per topic.
func (p *Principal) Unrestricted() bool { return p.publish.all && p.subscribe.all }

// Refuse returns the Failure for p lacking the scope to do what (e.g. `publish to "orders"`).
func (p *Principal) Refuse(what string) *Failure {
	return fail(ReasonScope, "principal %q may not %s", p.id, what)
}

// scope is a parsed list of patterns. A pattern is a topic name, matched exactly, or a prefix
// followed by one "*" at the end, which matches every topic that starts with the prefix: "*"
// matches every topic, "orders.*" matches "orders.eu" (not "orders"). Topic names cannot hold
// "*", so no name is mistaken for a pattern.
type scope struct {
	all      bool
	exact    map[string]struct{}
	prefixes []string
}

func parseScope(patterns []string) (scope, error) {
	var s scope
	for _, p := range patterns {
		prefix, wild := strings.CutSuffix(p, "*")
		if strings.Contains(prefix, "*") {
			return scope{}, fmt.Errorf("pattern %q: \"*\" may only end a pattern", p)
		}
		switch {
		case wild && prefix == "":
			s.all = true
		case wild:
			s.prefixes = append(s.prefixes, prefix)
		default:
			if _, err := domain.ParseTopicName(p); err != nil {
				return scope{}, fmt.Errorf("pattern %q: %w", p, err)
			}
			if s.exact == nil {
				s.exact = make(map[string]struct{})
			}
			s.exact[p] = struct{}{}
		}
	}
	return s, nil
}

func (s scope) match(topic string) bool {
	if s.all {
		return true
	}
	if _, ok := s.exact[topic]; ok {
		return true
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(topic, p) {
			return true
		}
	}
	return false
}

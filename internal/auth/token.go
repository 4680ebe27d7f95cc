package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token bounds. A token cannot be revoked, so it must not live long: the expiry is required, and
// one further away than MaxTokenLifetime (plus the leeway) is refused even when correctly signed.
const (
	MaxTokenLifetime = 24 * time.Hour
	// TokenLeeway forgives clocks that disagree by a little, at expiry and not-before.
	TokenLeeway = 30 * time.Second
	// maxTokenBytes refuses absurd tokens before any parsing or HMAC work.
	maxTokenBytes = 8 << 10
)

// Claims is a token's payload: the registered claims (sub is the principal, exp is required) and
// the scopes under "pubsub", in the spelling of a key file entry.
type Claims struct {
	jwt.RegisteredClaims
	Pubsub Grant `json:"pubsub"`
}

// Token verifies an HS256 token signed with the token key and returns its principal: the subject,
// with the scopes of its "pubsub" claim.
func (a *Authenticator) Token(tok string) (*Principal, error) {
	if a.tokenKey == nil {
		return nil, fail(ReasonInvalid, "tokens are not accepted: the server has no token key")
	}
	if len(tok) > maxTokenBytes {
		return nil, fail(ReasonInvalid, "the token is longer than %d bytes", maxTokenBytes)
	}
	now := a.now()
	var c Claims
	parser := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(TokenLeeway),
		jwt.WithTimeFunc(func() time.Time { return now }))
	_, err := parser.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return a.tokenKey, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, fail(ReasonInvalid, "the token has expired")
	case err != nil:
		// jwt's messages describe the token's flaw, never the key; keep the client's one generic.
		return nil, fail(ReasonInvalid, "the token is not valid")
	case c.Subject == "":
		return nil, fail(ReasonInvalid, "the token has no subject (sub)")
	case c.ExpiresAt.Sub(now) > MaxTokenLifetime+TokenLeeway:
		return nil, fail(ReasonInvalid, "the token lives longer than %s", MaxTokenLifetime)
	}
	p, err := NewPrincipal(c.Subject, c.Pubsub)
	if err != nil {
		return nil, fail(ReasonInvalid, "the token's scopes are not valid: %v", err)
	}
	return p, nil
}

// Mint signs a token for subject with the scopes of g, valid from now for ttl (at most
// MaxTokenLifetime). It is how operators (pubsubd token) and tests make the tokens that browsers
// present.
func Mint(key []byte, subject string, g Grant, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case len(key) < MinTokenKeyBytes:
		return "", fmt.Errorf("the token key has %d bytes; at least %d are needed", len(key), MinTokenKeyBytes)
	case subject == "":
		return "", errors.New("a token needs a subject")
	case ttl <= 0 || ttl > MaxTokenLifetime:
		return "", fmt.Errorf("a token's lifetime must be more than 0 and at most %s", MaxTokenLifetime)
	}
	if _, err := NewPrincipal(subject, g); err != nil {
		return "", err
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: subject, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Pubsub: g,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
}

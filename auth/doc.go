// Package auth authenticates STOMP and HTTP clients and decides what they
// may do: a users file (htpasswd style, bcrypt), JWT bearer tokens (HS256
// with a shared secret, RS256/ES256 with keys from a PEM or JWKS file or a
// provider's JWKS URL), a
// Chain that combines them with optional anonymous access, and Permissions,
// per-role rules on destination patterns.
//
// Chain implements session.Authenticator and Permissions implements
// session.Authorizer; HTTP handlers authenticate a request with
// Chain.AuthenticateRequest and check it with Permissions.Allow, so STOMP
// and HTTP clients meet the same users and the same rules.
//
// Errors returned by this package describe what was wrong with the
// credentials for the server's log; they never contain a passcode, a token
// or a secret. Clients are only ever told "authentication failed".
//
// Concurrency: every type here is safe for concurrent use and immutable
// after construction, except the key set a JWT fetched from a JWKS URL: it
// is replaced whole (an atomic pointer) by a fetch on a goroutine of its
// own, which Verify starts but never waits for.
package auth

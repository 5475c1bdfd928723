package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// TokenLen is the length of a session token in a cookie: 256 random bits
// in unpadded URL-safe base64.
const TokenLen = 43

var b64 = base64.RawURLEncoding.Strict()

// newToken returns a fresh token and its store ID.
func newToken() (token, id string) {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(raw[:]), hashID(raw[:])
}

// parseToken checks that s is a token this package could have issued (43
// characters of canonical unpadded base64url, 32 bytes) and returns its
// store ID. It rejects everything else without touching the store.
func parseToken(s string) (id string, ok bool) {
	if len(s) != TokenLen {
		return "", false
	}
	var raw [32]byte
	n, err := b64.Decode(raw[:], []byte(s))
	if err != nil || n != len(raw) {
		return "", false
	}
	return hashID(raw[:]), true
}

// hashID is the store's key for a token: SHA-256 of its 32 bytes, in
// unpadded base64url (43 characters, never "{" or "}"). A store, and so a
// dump of Redis, never sees a token.
func hashID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return b64.EncodeToString(sum[:])
}

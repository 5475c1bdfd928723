package session_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/session/internal/storetest"
)

// FuzzCookie sends arbitrary Cookie headers through the middleware: it
// never panics, never finds a session that was not issued, and calls the
// store only for a well-formed token (43 characters of canonical base64url).
func FuzzCookie(f *testing.F) {
	f.Add("__Host-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("__Host-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB")
	f.Add("__Host-session=; __Host-session=x")
	f.Add("__Host-session=\"quoted\"")
	f.Add("a=b; __Host-session=" + string(make([]byte, 43)))
	mem := session.NewMemoryStore(session.MemoryConfig{})
	f.Cleanup(func() { mem.Close() })
	c := &counting{Store: mem}
	m := session.New(session.Config{Store: c})
	f.Cleanup(func() { m.Close() })
	h := m.Handler(http.HandlerFunc(storetest.App))
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "/get?k=a", nil)
		req.Header.Set("Cookie", header)
		wellFormed := false
		for _, ck := range req.CookiesNamed(session.DefaultCookieName) {
			if b, err := base64.RawURLEncoding.Strict().DecodeString(ck.Value); err == nil && len(b) == 32 && len(ck.Value) == session.TokenLen {
				wellFormed = true
			}
		}
		before := c.loads.Load()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.String() != "<none>" {
			t.Fatalf("cookie %q: %d %q", header, rec.Code, rec.Body.String())
		}
		if loads := c.loads.Load() - before; loads != 0 && !wellFormed {
			t.Fatalf("cookie %q is not a well-formed token but reached the store", header)
		}
	})
}

// FuzzDecode feeds stored bytes to both codecs: an error, never a panic.
func FuzzDecode(f *testing.F) {
	good, _ := session.GobCodec{}.Encode(profile{Name: "x"})
	f.Add(good)
	f.Add([]byte(`{"Name":"x"}`))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p profile
		_ = session.GobCodec{}.Decode(data, &p)
		_ = session.JSONCodec{}.Decode(data, &p)
		var m map[string]any
		_ = session.GobCodec{}.Decode(data, &m)
	})
}

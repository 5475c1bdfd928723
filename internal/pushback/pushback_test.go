package pushback

import (
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHTTP(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 5 ", 5 * time.Second, true},
		{"999999999999999999999", Max, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"Sunday, 01-Mar-26 12:00:30 GMT", 30 * time.Second, true}, // RFC 850
		{"Sun Mar  1 12:01:00 2026", time.Minute, true},            // ANSI C
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},     // past
		{"Fri, 31 Dec 9999 23:59:59 GMT", Max, true},               // far future
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
		{"12abc", 0, false},
	} {
		if d, ok := HTTP(tc.in, now); d != tc.want || ok != tc.ok {
			t.Errorf("HTTP(%q) = %v, %v; want %v, %v", tc.in, d, ok, tc.want, tc.ok)
		}
	}
}

func TestGRPC(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true}, {"1500", 1500 * time.Millisecond, true},
		{"99999999999999999999999", Max, true},
		{"-1", 0, false}, {"", 0, false}, {"1.5", 0, false}, {" 10", 0, false}, {"10ms", 0, false},
	} {
		if d, ok := GRPC(tc.in); d != tc.want || ok != tc.ok {
			t.Errorf("GRPC(%q) = %v, %v; want %v, %v", tc.in, d, ok, tc.want, tc.ok)
		}
	}
}

func FuzzHTTP(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"0", "120", "-1", "", "soon", "999999999999999999999",
		"Sun, 01 Mar 2026 12:01:30 GMT", "Sunday, 01-Mar-26 12:00:30 GMT", "Sun Mar  1 12:01:00 2026",
		"Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := HTTP(s, now)
		if d < 0 || d > Max || (!ok && d != 0) {
			t.Fatalf("HTTP(%q) = %v, %v", s, d, ok)
		}
	})
}

func FuzzGRPC(f *testing.F) {
	for _, s := range []string{"0", "1500", "-1", "", "abc", "99999999999999999999999", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := GRPC(s)
		if d < 0 || d > Max || (!ok && d != 0) {
			t.Fatalf("GRPC(%q) = %v, %v", s, d, ok)
		}
	})
}

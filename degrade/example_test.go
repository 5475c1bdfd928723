package degrade_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/degrade"
)

func Example() {
	b := breaker.New(breaker.Config{})
	defer b.Close()
	b.ForceOpen() // the recommendations service is down
	f := degrade.New(degrade.Config{})
	defer f.Close()

	recs, err := degrade.Call(context.Background(), f, "user-42",
		func(ctx context.Context) ([]string, error) {
			return breaker.Call(ctx, b, func(context.Context) ([]string, error) { return []string{"for you"}, nil })
		},
		degrade.Value([]string{"bestsellers"}))
	fmt.Println(recs, err)
	// Output: [bestsellers] <nil>
}

func ExampleFallback_RoundTripper() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer backend.Close()
	f := degrade.New(degrade.Config{HTTP: func(req *http.Request, reason degrade.Reason, err error) *http.Response {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}
	}})
	defer f.Close()
	client := &http.Client{Transport: f.RoundTripper(nil)}
	resp, err := client.Get(backend.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get(degrade.FallbackHeader))
	// Output: 200 status
}

func ExampleSwitches() {
	sw := degrade.NewSwitches(degrade.SwitchesConfig{})
	defer sw.Close()
	f := degrade.New(degrade.Config{Switch: sw.Switch("recommendations")})
	defer f.Close()
	fetch := func(context.Context) (string, error) { return "personalised", nil }

	v, _ := degrade.Call(context.Background(), f, "", fetch, degrade.Value("generic"))
	fmt.Println(v)
	sw.Set(context.Background(), "recommendations", false) // e.g. from the admin handler
	v, _ = degrade.Call(context.Background(), f, "", fetch, degrade.Value("generic"))
	fmt.Println(v)
	// Output:
	// personalised
	// generic
}

func ExampleSwitches_AdminHandler() {
	sw := degrade.NewSwitches(degrade.SwitchesConfig{})
	defer sw.Close()
	admin := httptest.NewServer(sw.AdminHandler(func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer ops-token"
	}))
	defer admin.Close()
	req, _ := http.NewRequest(http.MethodPost, admin.URL, strings.NewReader("name=search&on=false"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer ops-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, sw.Switch("search").On())
	// Output: 200 false
}

func ExampleShedder_Handler() {
	s := degrade.NewShedder(degrade.ShedderConfig{
		Routes: []degrade.Route{{Prefix: "/checkout", Criticality: degrade.Critical}},
	})
	defer s.Close()
	srv := httptest.NewServer(s.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	})))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/checkout") // not overloaded: admitted
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, s.Stats().InFlight)
	// Output: 200 0
}

func ExampleThrottler() {
	t := degrade.NewThrottler(degrade.ThrottlerConfig{})
	defer t.Close()
	overloaded := errors.New("backend: overloaded")
	for range 10 { // the backend rejects everything
		t.Do(context.Background(), func(context.Context) error { return overloaded })
	}
	requests, accepts := t.Counts()
	fmt.Printf("requests %d, accepts %d, reject probability %.2f\n", requests, accepts, t.Probability())
	// Output: requests 10, accepts 0, reject probability 0.91
}

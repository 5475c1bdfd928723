package bulwark_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func tagTransport(tag string, trace *[]string) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return rtFunc(func(r *http.Request) (*http.Response, error) {
			*trace = append(*trace, tag)
			return next.RoundTrip(r)
		})
	}
}

func tagHandler(tag string, trace *[]string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			*trace = append(*trace, tag)
			next.ServeHTTP(w, r)
		})
	}
}

func TestChainHandlerOrder(t *testing.T) {
	var trace []string
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { trace = append(trace, "app") })
	h := bulwark.ChainHandler(app, tagHandler("a", &trace), nil, tagHandler("b", &trace))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if got := strings.Join(trace, ","); got != "a,b,app" {
		t.Fatalf("order = %s, want a,b,app", got)
	}
}

func TestChainTransportOrderOverRealServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	var trace []string
	client := &http.Client{Transport: bulwark.ChainTransport(nil, tagTransport("a", &trace), tagTransport("b", &trace), nil)}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" || strings.Join(trace, ",") != "a,b" {
		t.Fatalf("body %q trace %v", body, trace)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

func ExampleChainHandler() {
	var trace []string
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { trace = append(trace, "app") })
	h := bulwark.ChainHandler(app, tagHandler("outer", &trace), tagHandler("inner", &trace))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	fmt.Println(strings.Join(trace, " -> "))
	// Output: outer -> inner -> app
}

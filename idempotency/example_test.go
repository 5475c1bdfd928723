package idempotency_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/bulwark-go/bulwark/idempotency"
)

// A payment endpoint behind the middleware: the retry of a POST with the
// same Idempotency-Key gets the first response back, and the payment runs
// once.
func ExampleKeeper_Handler() {
	keeper := idempotency.New(idempotency.Config{}) // memory store; use redisstore with several instances
	defer keeper.Close()

	payments := 0
	pay := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		payments++
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "payment #%d", payments)
	})
	srv := httptest.NewServer(keeper.Handler(pay))
	defer srv.Close()

	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"amount":10}`))
		req.Header.Set("Idempotency-Key", `"a2f1c7e0-0b7e-4c1e-9b1a-3f0e5d6c7b8a"`)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s (replayed: %q)\n", resp.StatusCode, body, resp.Header.Get("Idempotent-Replayed"))
	}
	fmt.Println("payments made:", payments)
	// Output:
	// 201 payment #1 (replayed: "")
	// 201 payment #1 (replayed: "true")
	// payments made: 1
}

// Do makes any operation idempotent, outside HTTP.
func ExampleKeeper_Do() {
	keeper := idempotency.New(idempotency.Config{})
	defer keeper.Close()
	req := idempotency.Request{Scope: "customer-42", Key: "order-7", Fingerprint: "ship 3 books"}
	for range 2 {
		rec, replayed, err := keeper.Do(context.Background(), req, func(ctx context.Context) (*idempotency.Record, error) {
			return &idempotency.Record{Status: 200, Body: []byte("shipment S-1001")}, nil
		})
		fmt.Println(string(rec.Body), replayed, err)
	}
	// Output:
	// shipment S-1001 false <nil>
	// shipment S-1001 true <nil>
}

func ExampleParseKey() {
	for _, v := range []string{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, `8e03978e-40d5-43e8-bc93-6894a57f9324`, `"unterminated`} {
		key, err := idempotency.ParseKey(v, idempotency.DefaultMaxKeyLength)
		fmt.Printf("%q %v\n", key, err)
	}
	// Output:
	// "8e03978e-40d5-43e8-bc93-6894a57f9324" <nil>
	// "8e03978e-40d5-43e8-bc93-6894a57f9324" <nil>
	// "" idempotency: malformed Idempotency-Key: unterminated sf-string
}

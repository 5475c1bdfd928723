package tried

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"unsafe"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRecordAddHasDedupAndBound(t *testing.T) {
	var r Record
	ps := make([]*int, Max+2)
	for i := range ps {
		ps[i] = new(int)
	}
	r.Add(nil)
	if r.Len() != 0 {
		t.Fatal("nil recorded")
	}
	for _, p := range ps {
		r.Add(unsafe.Pointer(p))
		r.Add(unsafe.Pointer(p))
	}
	if r.Len() != Max {
		t.Fatalf("Len %d, want %d", r.Len(), Max)
	}
	for i, p := range ps {
		if got := r.Has(unsafe.Pointer(p)); got != (i < Max) {
			t.Fatalf("Has(%d) = %v", i, got)
		}
	}
	var o Record
	o.Merge(&r)
	o.Merge(nil)
	if o.Len() != Max || !o.Has(unsafe.Pointer(ps[0])) {
		t.Fatal("Merge lost endpoints")
	}
}

func TestRecordConcurrentAdds(t *testing.T) {
	var r Record
	var wg sync.WaitGroup
	ps := make([]*int, 8)
	for i := range ps {
		ps[i] = new(int)
	}
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Add(unsafe.Pointer(p))
			_ = r.Has(unsafe.Pointer(ps[0]))
		}()
	}
	wg.Wait()
	for _, p := range ps {
		if !r.Has(unsafe.Pointer(p)) {
			t.Fatal("lost a concurrent Add")
		}
	}
}

func TestContextAndTags(t *testing.T) {
	ctx := context.Background()
	if From(ctx) != nil {
		t.Fatal("record in a bare context")
	}
	r := new(Record)
	if From(With(ctx, r)) != r {
		t.Fatal("With/From")
	}
	err := &Error{Err: io.EOF, Rec: r}
	if err.Error() != io.EOF.Error() || !errors.Is(err, io.EOF) || Of(err) != r || Strip(err) != io.EOF || Strip(io.EOF) != io.EOF {
		t.Fatal("Error does not read as its cause")
	}
	if Of(nil) != nil || Of(io.EOF) != nil || err.Timeout() {
		t.Fatal("Of or Timeout")
	}
	if OfBody(io.NopCloser(nil)) != nil {
		t.Fatal("OfBody of a plain body")
	}
}

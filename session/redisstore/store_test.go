package redisstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/session"
	"github.com/bulwark-go/bulwark/session/internal/storetest"
	"github.com/bulwark-go/bulwark/session/redisstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newMemory(t *testing.T) session.Store {
	s := session.NewMemoryStore(session.MemoryConfig{})
	t.Cleanup(func() { s.Close() })
	return s
}

func newRedis(t *testing.T, h *redistest.Harness) session.Store {
	return redisstore.New(h.Client, redisstore.Config{Prefix: h.Prefix})
}

// TestStore runs the store conformance suite over the memory store and the
// Redis store on every configured flavour (on Cluster, a CROSSSLOT error
// fails it).
func TestStore(t *testing.T) {
	redistest.Stores(t, newMemory, newRedis, storetest.Run)
}

// TestManager runs the Manager's scenarios (lost update, resurrection,
// Renew, DestroyAll, fixation, tampering) over every store.
func TestManager(t *testing.T) {
	redistest.Stores(t, newMemory, newRedis, storetest.Scenarios)
}

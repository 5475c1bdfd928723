package cache

import (
	"encoding/binary"
	"errors"
)

// A record is how the cache keeps an entry in the Store: a fixed header
// carrying the freshness metadata, then the Codec's bytes. Times are Unix
// nanoseconds (wall clock), since instances share the Store but not a
// monotonic clock.
//
//	offset size
//	0      1    magic 0xB7
//	1      1    version 1
//	2      1    flags: bit 0 = not found (no payload follows)
//	3      8    fresh until, Unix ns, big endian
//	11     8    load duration in ns (XFetch's delta), big endian
//	19     ...  payload
const (
	recMagic   = 0xB7
	recVersion = 1
	recHeader  = 19
	flagNeg    = 1
)

var errRecord = errors.New("cache: malformed store record")

type record struct {
	negative   bool
	freshUntil int64
	delta      int64
	payload    []byte
}

func appendRecord(b []byte, r record) []byte {
	var flags byte
	if r.negative {
		flags |= flagNeg
	}
	b = append(b, recMagic, recVersion, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(r.freshUntil))
	b = binary.BigEndian.AppendUint64(b, uint64(r.delta))
	if !r.negative {
		b = append(b, r.payload...)
	}
	return b
}

// parseRecord decodes a record read from the Store, which is untrusted
// input: anything malformed is an error, never a panic.
func parseRecord(b []byte) (record, error) {
	if len(b) < recHeader || b[0] != recMagic || b[1] != recVersion || b[2]&^flagNeg != 0 {
		return record{}, errRecord
	}
	r := record{
		negative:   b[2]&flagNeg != 0,
		freshUntil: int64(binary.BigEndian.Uint64(b[3:])),
		delta:      int64(binary.BigEndian.Uint64(b[11:])),
		payload:    b[recHeader:],
	}
	if r.delta < 0 || (r.negative && len(r.payload) != 0) {
		return record{}, errRecord
	}
	return r, nil
}

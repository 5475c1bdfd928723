package session

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
)

// Codec turns session values into bytes and back. Values are encoded one
// by one (each key is stored apart, so that two requests changing
// different keys never overwrite each other). Implementations must be
// safe for concurrent use.
type Codec interface {
	// Encode returns the encoding of v.
	Encode(v any) ([]byte, error)
	// Decode decodes data into v, a non-nil pointer. It must return an
	// error, never panic, for data it cannot decode: stored data is
	// untrusted once it has left the process.
	Decode(data []byte, v any) error
}

// GobCodec encodes values with encoding/gob: the default Codec. A value
// read back with Get[T] is decoded into a T, so concrete types need no
// registration; a T that is an interface type (Get[any]) needs the
// concrete types registered with [gob.Register].
type GobCodec struct{}

// Encode implements [Codec].
func (GobCodec) Encode(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Decode implements [Codec]. encoding/gob is documented as not hardened
// against adversarial input, and a session's bytes come back from a store
// other processes can write: a panic while decoding is returned as an
// error.
func (GobCodec) Decode(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("session: gob decode: %v", r)
		}
	}()
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

// JSONCodec encodes values with encoding/json: readable in Redis, and
// shared with programs in other languages; it loses what JSON cannot hold
// (a time.Time's monotonic reading, unexported fields, integer precision
// past 2^53 when decoded into an interface).
type JSONCodec struct{}

// Encode implements [Codec].
func (JSONCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }

// Decode implements [Codec].
func (JSONCodec) Decode(data []byte, v any) error { return json.Unmarshal(data, v) }

package redistest

import "strings"

// Slot returns the Redis Cluster hash slot (0 to 16383) of key: CRC16
// (XMODEM) of its hash tag, modulo 16384. The hash tag is the part between
// the first "{" and the next "}" after it, when that part is not empty;
// otherwise the whole key is hashed.
//
// Keys that one command or script touches must share a slot on Cluster.
// A suite can assert it with Slot on every flavour, so a missing hash tag
// is caught on miniredis too, before a Cluster run reports CROSSSLOT.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

package rules

// suffixMap maps domain names to values so that every suffix of a name
// that starts a label can be looked up in one pass over the name, from its
// end: suffixHash extends the hash of a suffix by the byte before it, so
// each lookup costs one probe of an open-addressing table instead of
// hashing the suffix from scratch (a Go map would hash each suffix anew,
// which makes walking the suffixes of a name quadratic in its length).
//
// The zero value is an empty map. It is not safe for concurrent writes;
// once built it is only read, and reads are safe for concurrent use.
type suffixMap[V any] struct {
	// slots has a power-of-two length (or is nil) and is at most half
	// full; a slot with an empty key is free (no domain name is empty).
	slots []suffixSlot[V]
	n     int
}

type suffixSlot[V any] struct {
	hash uint64
	key  string
	val  V
}

// suffixHash extends h, the hash of a string s, to the hash of c + s: it
// is FNV-1a over the bytes of a string from its last to its first.
func suffixHash(h uint64, c byte) uint64 {
	return (h ^ uint64(c)) * fnvPrime
}

// keyHash is the suffixHash of a whole string.
func keyHash(key string) uint64 {
	h := uint64(fnvOffset)
	for i := len(key) - 1; i >= 0; i-- {
		h = suffixHash(h, key[i])
	}
	return h
}

// slot is where a probe for hash starts.
func (m *suffixMap[V]) slot(hash uint64) uint64 {
	return (hash ^ hash>>29) & uint64(len(m.slots)-1)
}

// get returns the value stored under key, whose keyHash is hash.
func (m *suffixMap[V]) get(hash uint64, key string) (V, bool) {
	if len(m.slots) > 0 && key != "" {
		mask := uint64(len(m.slots) - 1)
		for i := m.slot(hash); m.slots[i].key != ""; i = (i + 1) & mask {
			if s := &m.slots[i]; s.hash == hash && s.key == key {
				return s.val, true
			}
		}
	}
	var zero V
	return zero, false
}

// ref returns a pointer to the value stored under key (which must not be
// empty), storing the zero value first if there is none. The pointer is
// valid until the next call of ref.
func (m *suffixMap[V]) ref(key string) *V {
	if 2*(m.n+1) > len(m.slots) {
		m.grow()
	}
	hash := keyHash(key)
	mask := uint64(len(m.slots) - 1)
	i := m.slot(hash)
	for ; m.slots[i].key != ""; i = (i + 1) & mask {
		if s := &m.slots[i]; s.hash == hash && s.key == key {
			return &s.val
		}
	}
	m.slots[i] = suffixSlot[V]{hash: hash, key: key}
	m.n++
	return &m.slots[i].val
}

// grow doubles the table (to 16 slots at first) and reinserts every entry.
func (m *suffixMap[V]) grow() {
	old := m.slots
	m.slots = make([]suffixSlot[V], max(16, 2*len(old)))
	mask := uint64(len(m.slots) - 1)
	for _, s := range old {
		if s.key == "" {
			continue
		}
		i := m.slot(s.hash)
		for m.slots[i].key != "" {
			i = (i + 1) & mask
		}
		m.slots[i] = s
	}
}

package queue

import "sync"

// bodiesMax bounds the bytes Remember keeps for messages not yet
// attempted; the oldest go first, and their attempts read the spool.
const bodiesMax = 16 << 20

// bodies are blobs whose writer still held their bytes when it queued
// them (Remember): the first attempt delivers from them instead of
// reading the blob back from the spool.
type bodies struct {
	mu    sync.Mutex
	m     map[string][]byte
	order []string // keys by age; taken ones are skipped
	size  int
}

// Remember tells the queue the bytes of the blob at key, about to be
// queued: bytes read through the blob's checksum, or written to it, by
// the caller. The first attempt of the message then delivers them without
// opening the spool. Messages larger than the queue keeps in memory are
// ignored. body must not be modified afterwards.
func (q *Queue) Remember(key string, body []byte) {
	if len(body) == 0 || len(body) > memBodyMax {
		return
	}
	b := &q.bodies
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string][]byte{}
	}
	if old, ok := b.m[key]; ok {
		b.size -= len(old)
	} else {
		b.order = append(b.order, key)
	}
	b.m[key] = body
	b.size += len(body)
	for b.size > bodiesMax && len(b.order) > 0 {
		k := b.order[0]
		b.order = b.order[1:]
		b.size -= len(b.m[k])
		delete(b.m, k)
	}
	if len(b.order) > 2*len(b.m)+64 {
		live := b.order[:0:0]
		for _, k := range b.order {
			if _, ok := b.m[k]; ok {
				live = append(live, k)
			}
		}
		b.order = live
	}
}

// recall returns and forgets the remembered bytes of the blob at key, nil
// when there are none.
func (q *Queue) recall(key string) []byte {
	b := &q.bodies
	b.mu.Lock()
	defer b.mu.Unlock()
	body, ok := b.m[key]
	if ok {
		delete(b.m, key)
		b.size -= len(body)
	}
	return body
}

package web

import (
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/web/preview"
)

// TestViewCacheBounded: the reader's cache keeps renderings up to its byte
// bound, forgets the least recently used first, and never keeps one that
// would take more than a quarter of it.
func TestViewCacheBounded(t *testing.T) {
	c := &viewCache{max: 40 << 10}
	doc := func(kb int) *preview.View { return &preview.View{HTMLDoc: []byte(strings.Repeat("x", kb<<10))} }
	key := func(b string) viewKey { return viewKey{tenantID: 1, blob: b, base: "/mail/f/1/m/1", lang: "ja"} }
	for _, b := range []string{"a", "b", "c"} {
		c.put(key(b), doc(8))
	}
	if _, ok := c.get(key("a")); !ok { // a is now the most recently used
		t.Fatal("a not kept")
	}
	c.put(key("d"), doc(8))
	c.put(key("e"), doc(8)) // 5 × (8 KiB + overhead) > 40 KiB: b goes
	if _, ok := c.get(key("b")); ok {
		t.Fatal("the least recently used entry stayed beyond the bound")
	}
	for _, b := range []string{"a", "c", "d", "e"} {
		if _, ok := c.get(key(b)); !ok {
			t.Fatalf("%s forgotten", b)
		}
	}
	if c.size > c.max {
		t.Fatalf("cache holds %d bytes, bound %d", c.size, c.max)
	}
	c.put(key("huge"), doc(11))
	if _, ok := c.get(key("huge")); ok {
		t.Fatal("a rendering over a quarter of the cache was kept")
	}
	other := key("a")
	other.remote = true
	if _, ok := c.get(other); ok {
		t.Fatal("another option's rendering answered")
	}
	other = key("a")
	other.tenantID = 2
	if _, ok := c.get(other); ok {
		t.Fatal("another tenant's key answered")
	}
}

package blob

import "context"

type writtenKey struct{}

type written struct {
	key  string
	body []byte
}

// WithWritten returns ctx carrying the bytes just written to the blob at
// key (and committed), for a reader further along the same request that
// would otherwise read the blob back (Written). body must not be
// modified afterwards.
func WithWritten(ctx context.Context, key string, body []byte) context.Context {
	return context.WithValue(ctx, writtenKey{}, written{key: key, body: body})
}

// Written returns the bytes ctx carries for the blob at key (WithWritten),
// nil when it carries none.
func Written(ctx context.Context, key string) []byte {
	if w, ok := ctx.Value(writtenKey{}).(written); ok && w.key == key {
		return w.body
	}
	return nil
}

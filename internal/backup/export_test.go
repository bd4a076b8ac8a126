package backup

// SetAfterLinks makes Run call f after the store's lock is released and
// before anything is copied.
func SetAfterLinks(o *Options, f func()) { o.afterLinks = f }

// Package bytesize reads the byte sizes written in configuration, policy
// settings and search terms: "1048576", "400K", "25M", "2GB".
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Errors wrapped by Parse, for errors.Is.
var (
	ErrSyntax = errors.New("not a byte size")
	ErrRange  = errors.New("byte size out of range")
)

// Parse reads a byte size: optional spaces, a non-negative decimal integer
// (digits only, no sign), an optional suffix K, M or G (2^10, 2^20, 2^30)
// optionally followed by B, then optional spaces; letters in either case.
// A size that does not fit in an int64 is an error wrapping ErrRange,
// never a wrapped-around value; anything else not in that form wraps
// ErrSyntax. The error does not repeat s: callers name the setting or
// term it came from. Zero is a size like any other; whether it means
// "no limit" or "use the default" is the caller's policy.
func Parse(s string) (int64, error) {
	v := strings.TrimSpace(s)
	b := strings.HasSuffix(v, "B") || strings.HasSuffix(v, "b")
	if b {
		v = v[:len(v)-1]
	}
	mult := int64(1)
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M', 'm':
			mult = 1 << 20
		case 'G', 'g':
			mult = 1 << 30
		}
		if mult > 1 {
			v = v[:n-1]
		}
	}
	// B only as part of KB, MB or GB: "10B" reads like a unit this
	// grammar does not have, and strconv alone would take "+10" or "0x10".
	if (b && mult == 1) || !digits(v) {
		return 0, fmt.Errorf("%w: use a whole number, optionally followed by K, M or G (powers of 1024) and an optional B", ErrSyntax)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		// Only the range can fail once v is all digits.
		return 0, fmt.Errorf("%w: more than %d bytes", ErrRange, int64(math.MaxInt64))
	}
	return n * mult, nil
}

func digits(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

package zipcrypt

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"
)

// DefaultPasswordChars are the characters of generated passwords: letters
// and digits without the ones that are easy to misread when typed from a
// mail (0/O, 1/l/I).
const DefaultPasswordChars = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"

// Password length bounds and default.
const (
	MinPasswordLength     = 8
	MaxPasswordLength     = 64
	DefaultPasswordLength = 12
)

// minPasswordChars is the smallest character set accepted: below it a
// short password is guessable.
const minPasswordChars = 10

// checkPasswordChars validates a password character set: printable ASCII
// (ZipCrypto and the AES key derivation work on bytes, and Explorer asks
// for the password in the system code page), at least minPasswordChars
// distinct characters.
func checkPasswordChars(chars string) error {
	seen := map[rune]bool{}
	for _, r := range chars {
		if r < 0x21 || r > 0x7e {
			return fmt.Errorf("password characters must be printable ASCII without spaces, not %q", r)
		}
		seen[r] = true
	}
	if len(seen) < minPasswordChars {
		return fmt.Errorf("password character set needs at least %d distinct characters", minPasswordChars)
	}
	return nil
}

// NewPassword returns a random password of length characters drawn
// uniformly (crypto/rand) from chars; "" means DefaultPasswordChars.
func NewPassword(length int, chars string) (string, error) {
	if chars == "" {
		chars = DefaultPasswordChars
	}
	if err := checkPasswordChars(chars); err != nil {
		return "", err
	}
	if length < MinPasswordLength || length > MaxPasswordLength {
		return "", fmt.Errorf("password length %d: want %d to %d", length, MinPasswordLength, MaxPasswordLength)
	}
	set := uniqueRunes(chars)
	var b strings.Builder
	max := big.NewInt(int64(len(set)))
	for i := 0; i < length; i++ {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		b.WriteRune(set[n.Int64()])
	}
	return b.String(), nil
}

func uniqueRunes(s string) []rune {
	seen := map[rune]bool{}
	var out []rune
	for _, r := range s {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// CheckFixedPassword validates a password a user chooses for all their
// ZIPs: printable ASCII, MinPasswordLength to MaxPasswordLength long.
func CheckFixedPassword(pw string) error {
	if n := utf8.RuneCountInString(pw); n < MinPasswordLength || n > MaxPasswordLength {
		return fmt.Errorf("the password must be %d to %d characters long", MinPasswordLength, MaxPasswordLength)
	}
	for _, r := range pw {
		if r < 0x21 || r > 0x7e {
			return fmt.Errorf("the password may only contain printable ASCII characters without spaces")
		}
	}
	return nil
}

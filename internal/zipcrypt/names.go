package zipcrypt

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/unicode/norm"
)

// NameEncoding is how file names are written inside the ZIP.
type NameEncoding string

// Name encodings.
const (
	// NamesCP932 writes names in Shift_JIS as Windows code page 932
	// extends it, without the UTF-8 flag: what Windows Explorer on a
	// Japanese system reads. The exact UTF-8 name is added in an Info-ZIP
	// Unicode Path extra field (0x7075), which 7-Zip and unzip prefer.
	NamesCP932 NameEncoding = "cp932"
	// NamesUTF8 writes UTF-8 names with the language encoding flag
	// (general purpose bit 11, APPNOTE 4.4.4 and appendix D).
	NamesUTF8 NameEncoding = "utf8"
)

// maxNameRunes bounds a file name's length (Windows paths stay short).
const maxNameRunes = 120

// cleanName turns a decoded attachment file name into a safe entry name:
// the last path element only (no directories, no "..") in Unicode NFC
// (macOS sends decomposed kana), without control characters or the
// characters Windows refuses (<>:"/\|?*), without trailing dots and
// spaces, and at most maxNameRunes long with its extension kept. fallback
// is used when nothing is left.
func cleanName(name, fallback string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = norm.NFC.String(name)
	name = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f || unicode.Is(unicode.Cf, r) && r != 0x200d:
			return -1 // controls, and format characters such as RLO that disguise extensions
		case strings.ContainsRune(`<>:"/\|?*`, r):
			return '_'
		}
		return r
	}, name)
	name = strings.TrimRight(strings.TrimSpace(name), ". ")
	if name == "" || name == "." || name == ".." {
		name = fallback
	}
	if utf8.RuneCountInString(name) > maxNameRunes {
		ext := path.Ext(name)
		if utf8.RuneCountInString(ext) > 16 {
			ext = ""
		}
		r := []rune(strings.TrimSuffix(name, ext))
		name = string(r[:maxNameRunes-utf8.RuneCountInString(ext)]) + ext
	}
	return name
}

// fallbackName names an attachment that has no usable file name, from
// its media type.
func fallbackName(i int, mediaType string, message bool) string {
	if message {
		return fmt.Sprintf("message-%d.eml", i)
	}
	ext := ".bin"
	if exts, _ := mime.ExtensionsByType(mediaType); len(exts) > 0 {
		ext = exts[0]
	}
	switch mediaType {
	case "text/plain":
		ext = ".txt"
	case "text/html":
		ext = ".html"
	}
	return fmt.Sprintf("attachment-%d%s", i, ext)
}

// nameSet makes entry names unique the way Windows compares them
// (case-insensitively): a repeated name gets " (2)", " (3)" before its
// extension.
type nameSet map[string]bool

func (s nameSet) unique(name string) string {
	if !s[strings.ToLower(name)] {
		s[strings.ToLower(name)] = true
		return name
	}
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for i := 2; ; i++ {
		n := fmt.Sprintf("%s (%d)%s", base, i, ext)
		if !s[strings.ToLower(n)] {
			s[strings.ToLower(n)] = true
			return n
		}
	}
}

// encodeCP932 encodes name in code page 932; a character it cannot
// represent becomes "_". The result is used as raw bytes.
func encodeCP932(name string) string {
	enc := japanese.ShiftJIS.NewEncoder()
	var b strings.Builder
	for _, r := range name {
		out, err := enc.String(string(r))
		if err != nil || out == "" {
			b.WriteByte('_')
			continue
		}
		b.WriteString(out)
	}
	return b.String()
}

// unicodePathExtra is the Info-ZIP Unicode Path extra field (0x7075):
// version 1, the CRC-32 of the name as stored in the header, and the
// UTF-8 name.
func unicodePathExtra(stored, utf8Name string) []byte {
	b := make([]byte, 9, 9+len(utf8Name))
	binary.LittleEndian.PutUint16(b[0:], 0x7075)
	binary.LittleEndian.PutUint16(b[2:], uint16(5+len(utf8Name)))
	b[4] = 1
	binary.LittleEndian.PutUint32(b[5:], crc32.ChecksumIEEE([]byte(stored)))
	return append(b, utf8Name...)
}

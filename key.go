package promptvault

import (
	"fmt"
	"regexp"
	"strings"
)

// KeyPattern is what a prompt key looks like: lower-case path segments that
// start with a letter or digit. Keys become URL paths and file names, so the
// pattern leaves no room for "..", hidden files, or case-only collisions
// between checkouts on case-insensitive file systems.
var KeyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$`)

// MaxKeyLen is the longest key, in bytes.
const MaxKeyLen = 128

// KeyFromPath maps a path relative to the prompts directory, with '/'
// separators ("support/summarize.yaml" or ".yml"), to its key
// ("support/summarize"). ok is false when the file is not a prompt file
// (another extension); such files are ignored. err is a *Problems with one
// problem at line 0 when it is a .yaml or .yml file whose key is invalid.
func KeyFromPath(rel string) (key string, ok bool, err error) {
	ext := ""
	for _, e := range []string{".yaml", ".yml"} {
		if len(rel) >= len(e) && strings.EqualFold(rel[len(rel)-len(e):], e) {
			ext = rel[len(rel)-len(e):]
			break
		}
	}
	if ext == "" {
		return "", false, nil
	}
	// An upper-case extension is still meant as a prompt: ignoring it
	// silently would hide the file from its author.
	if ext != strings.ToLower(ext) {
		return "", true, keyProblem(rel, fmt.Sprintf("file extension %q is not lower case; want .yaml or .yml", ext))
	}
	key = strings.TrimSuffix(rel, ext)
	if msg := keyError(key); msg != "" {
		return "", true, keyProblem(rel, msg)
	}
	return key, true, nil
}

// ValidateKey checks a key from a URL or a command line argument by the same
// rules as KeyFromPath. The error is a *Problems whose path is the key.
func ValidateKey(key string) error {
	if msg := keyError(key); msg != "" {
		return keyProblem(key, msg)
	}
	return nil
}

func keyProblem(path, msg string) error {
	return &Problems{List: []Problem{{Path: path, Message: msg}}}
}

// keyError says what is wrong with key, most specific reason first, or ""
// when it is valid.
func keyError(key string) string {
	if key == "" {
		return "key is empty; want a name such as support/summarize"
	}
	if len(key) > MaxKeyLen {
		return fmt.Sprintf("key is %d characters long; the limit is %d", len(key), MaxKeyLen)
	}
	if KeyPattern.MatchString(key) {
		return ""
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'A' && c <= 'Z':
			return fmt.Sprintf("key %q has upper-case letters; want lower case", key)
		case c < 0x20 || c == 0x7f || c >= 0x80:
			return fmt.Sprintf("key %q contains byte 0x%02x; want only a-z, 0-9, '.', '_', '-' and '/'", key, c)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return fmt.Sprintf("key %q has an empty path segment; want segments separated by single '/'", key)
		case seg == "." || seg == "..":
			return fmt.Sprintf("key %q has a %q path segment; want plain names", key, seg)
		case !isLowerAlnum(seg[0]):
			return fmt.Sprintf("key %q has segment %q starting with %q; want a letter or digit first", key, seg, seg[:1])
		}
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !isLowerAlnum(c) && !strings.ContainsRune("._-/", rune(c)) {
			return fmt.Sprintf("key %q contains %q; want only a-z, 0-9, '.', '_', '-' and '/'", key, c)
		}
	}
	return fmt.Sprintf("key %q does not match %s", key, KeyPattern)
}

func isLowerAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

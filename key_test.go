package promptvault

import (
	"errors"
	"strings"
	"testing"
)

func TestKeyFromPath(t *testing.T) {
	for _, tt := range []struct {
		rel     string
		wantKey string
		wantOK  bool
		wantErr string // substring; "" for no error
	}{
		{"summarize.yaml", "summarize", true, ""},
		{"support/summarize.yaml", "support/summarize", true, ""},
		{"support/summarize.yml", "support/summarize", true, ""},
		{"a/b-c/d_e.f.yaml", "a/b-c/d_e.f", true, ""},
		{"v2/0.yaml", "v2/0", true, ""},
		{"README.md", "", false, ""},
		{"notes.txt", "", false, ""},
		{"support/summarize.yaml.bak", "", false, ""},
		{"Upper.yaml", "", true, "upper-case"},
		{"support/Summarize.yml", "", true, "upper-case"},
		{"x.YAML", "", true, "not lower case"},
		{"../escape.yaml", "", true, `".." path segment`},
		{"a/../b.yaml", "", true, `".." path segment`},
		{"a//b.yaml", "", true, "empty path segment"},
		{"/abs.yaml", "", true, "empty path segment"},
		{".hidden.yaml", "", true, `starting with "."`},
		{"a/.hidden.yaml", "", true, `starting with "."`},
		{"-dash.yaml", "", true, `starting with "-"`},
		{".yaml", "", true, "key is empty"},
		{"nul\x00.yaml", "", true, "byte 0x00"},
		{"tab\t.yaml", "", true, "byte 0x09"},
		{"café.yaml", "", true, "byte 0xc3"},
		{"a b.yaml", "", true, `contains ' '`},
		{"a\\b.yaml", "", true, `contains '\\'`},
		{strings.Repeat("a", 128) + ".yaml", strings.Repeat("a", 128), true, ""},
		{strings.Repeat("a", 129) + ".yaml", "", true, "129 characters long; the limit is 128"},
	} {
		t.Run(tt.rel, func(t *testing.T) {
			key, ok, err := KeyFromPath(tt.rel)
			if key != tt.wantKey || ok != tt.wantOK {
				t.Errorf("KeyFromPath(%q) = %q, %v; want %q, %v", tt.rel, key, ok, tt.wantKey, tt.wantOK)
			}
			checkKeyErr(t, err, tt.wantErr, tt.rel)
			if tt.wantOK && strings.HasSuffix(tt.rel, ".yaml") && !strings.Contains(tt.wantErr, "lower case") {
				// ValidateKey applies the same rules to the bare key.
				verr := ValidateKey(strings.TrimSuffix(tt.rel, ".yaml"))
				if (verr == nil) != (err == nil) {
					t.Errorf("ValidateKey disagrees: %v vs %v", verr, err)
				}
			}
		})
	}
}

func checkKeyErr(t *testing.T, err error, want, path string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("err = %v, want nil", err)
		}
		return
	}
	var probs *Problems
	if !errors.As(err, &probs) || len(probs.List) != 1 {
		t.Fatalf("err = %#v, want *Problems with one problem", err)
	}
	p := probs.List[0]
	if p.Path != path || p.Line != 0 || p.Column != 0 || !strings.Contains(p.Message, want) {
		t.Errorf("problem = %+v, want path %q at 0:0 containing %q", p, path, want)
	}
	if p.Message != strings.ToLower(p.Message[:1])+p.Message[1:] {
		t.Errorf("message %q does not start lower case", p.Message)
	}
}

func TestValidateKey(t *testing.T) {
	for key, want := range map[string]string{
		"support/summarize": "",
		"a":                 "",
		"":                  "key is empty",
		"..":                `".." path segment`,
		"a/./b":             `"." path segment`,
		"A":                 "upper-case",
		"a/":                "empty path segment",
		"a\x00b":            "byte 0x00",
		"%2e%2e":            `starting with "%"`,
	} {
		checkKeyErr(t, ValidateKey(key), want, key)
	}
}

package manifest

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// fence finds the fenced blocks of a Markdown file: the line before the
// fence (for an <!-- invalid --> marker), the language and the body.
var fence = regexp.MustCompile("(?m)^(.*)\\n```(yaml|text)\\n((?s:.*?))^```$")

// TestReadmeSnippets: every YAML block of manifests/README.md decodes,
// except one marked <!-- invalid ... --> on the line before it, which
// must be refused with exactly the errors of the text block after it.
func TestReadmeSnippets(t *testing.T) {
	b, err := os.ReadFile("../../manifests/README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := fence.FindAllStringSubmatch(string(b), -1)
	yamls := 0
	for i, m := range blocks {
		before, lang, body := m[1], m[2], m[3]
		if lang != "yaml" {
			continue
		}
		yamls++
		s, err := Decode("bad.yaml", []byte(body))
		if !strings.HasPrefix(before, "<!-- invalid") {
			if err != nil {
				t.Errorf("README block %d:\n%s\n%v", i, body, err)
			} else if len(s.Tenants)+len(s.Exposures)+len(s.Services) == 0 {
				t.Errorf("README block %d holds no document", i)
			}
			continue
		}
		if i+1 >= len(blocks) || blocks[i+1][2] != "text" {
			t.Fatalf("README block %d is marked invalid but no text block of its errors follows", i)
		}
		want := strings.TrimSuffix(blocks[i+1][3], "\n")
		if err == nil || err.Error() != want {
			t.Errorf("README block %d: errors\n%v\nwant (the README's text)\n%s", i, err, want)
		}
	}
	if yamls < 4 {
		t.Errorf("found %d YAML blocks in the README; the pattern no longer finds them", yamls)
	}
}

// TestTopReadmeExcerpts: every YAML block of the top-level README is an
// excerpt of manifests/examples/tenants.yaml, word for word, so what the
// README shows is what the e2e suite applies.
func TestTopReadmeExcerpts(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := os.ReadFile("../../manifests/examples/tenants.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range fence.FindAllStringSubmatch(string(b), -1) {
		if m[2] != "yaml" {
			continue
		}
		n++
		if !strings.Contains(string(ex), m[3]) {
			t.Errorf("README.md's YAML block is not an excerpt of manifests/examples/tenants.yaml:\n%s", m[3])
		}
		if _, err := Decode("README.md", []byte(m[3])); err != nil {
			t.Errorf("README.md's YAML block does not decode: %v", err)
		}
	}
	if n == 0 {
		t.Error("README.md shows no YAML block of the example")
	}
}

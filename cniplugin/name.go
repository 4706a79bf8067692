package cniplugin

import (
	"fmt"
	"strings"

	"github.com/nsproxy/nsproxy/hooks"
)

// maxName bounds a generated namespace name. The daemon allows 255, but it
// names each exposure "<name>-<hostPort>" and cuts that at 200: stay below
// so that the port survives (CHECK looks for it).
const maxName = 180

// NameFields are what a name template may use, as {{.Field}}.
type NameFields struct {
	ContainerID  string
	ShortID      string // the first 12 characters of ContainerID
	IfName       string
	PodName      string // K8S_POD_NAME (podman: the container's name)
	PodNamespace string // K8S_POD_NAMESPACE
	PodUID       string // K8S_POD_UID
	Network      string // the CNI network's name
}

// nameTemplate is a parsed template: literal text and field references.
// It is deliberately not text/template: a name needs substitution only,
// and a config must not be able to loop or allocate without bound.
type nameTemplate []nameSegment

type nameSegment struct {
	text  string
	field func(NameFields) string // nil: text
}

var nameFields = map[string]func(NameFields) string{
	"ContainerID":  func(f NameFields) string { return f.ContainerID },
	"ShortID":      func(f NameFields) string { return f.ShortID },
	"IfName":       func(f NameFields) string { return f.IfName },
	"PodName":      func(f NameFields) string { return f.PodName },
	"PodNamespace": func(f NameFields) string { return f.PodNamespace },
	"PodUID":       func(f NameFields) string { return f.PodUID },
	"Network":      func(f NameFields) string { return f.Network },
}

// parseNameTemplate parses "text{{.Field}}text..."; spaces inside the
// braces are allowed.
func parseNameTemplate(s string) (nameTemplate, error) {
	var t nameTemplate
	rest := s
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			t = append(t, nameSegment{text: rest})
			break
		}
		if i > 0 {
			t = append(t, nameSegment{text: rest[:i]})
		}
		rest = rest[i+2:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			return nil, fmt.Errorf("nameTemplate %q: unclosed {{", s)
		}
		ref := strings.TrimSpace(rest[:j])
		rest = rest[j+2:]
		f, ok := nameFields[strings.TrimPrefix(ref, ".")]
		if !strings.HasPrefix(ref, ".") || !ok {
			return nil, fmt.Errorf("nameTemplate %q: unknown field {{%s}}: use {{.ContainerID}}, {{.ShortID}}, {{.IfName}}, {{.PodName}}, {{.PodNamespace}}, {{.PodUID}} or {{.Network}}", s, ref)
		}
		t = append(t, nameSegment{field: f})
	}
	return t, nil
}

// execute returns the sanitized name, or "" (the daemon's default) when
// the template is empty or gives nothing with a letter or digit in it,
// such as "-" from "{{.PodNamespace}}-{{.PodName}}" outside Kubernetes.
func (t nameTemplate) execute(f NameFields) string {
	var b strings.Builder
	for _, s := range t {
		if s.field != nil {
			b.WriteString(s.field(f))
		} else {
			b.WriteString(s.text)
		}
		if b.Len() > maxName {
			break
		}
	}
	return sanitizeName(b.String())
}

// sanitizeName is hooks.SanitizeName cut to maxName; a result without a
// letter or digit is "".
func sanitizeName(s string) string {
	if len(s) > maxName {
		s = s[:maxName]
	}
	s = hooks.SanitizeName(s)
	if !strings.ContainsFunc(s, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' }) {
		return ""
	}
	return s
}

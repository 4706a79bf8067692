package manifest

// TEMPORARY (tenantsd branch): a stand-in for the manifest helper's
// decoder, so that the daemon's apply/delete/diff and the CLI can be built
// and tested against the agreed signatures before the real one is on main.
// Delete this file when the real Decode and Diff land.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decode reads every document of one file.
func Decode(file string, data []byte) (Set, error) {
	s := Set{Positions: map[string]Pos{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var errs []error
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return Set{}, fmt.Errorf("%s: %w", file, err)
		}
		if len(n.Content) == 0 {
			continue
		}
		doc := n.Content[0]
		pos := Pos{File: file, Line: doc.Line, Col: doc.Column}
		var head struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   Meta   `yaml:"metadata"`
		}
		if err := doc.Decode(&head); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", pos, err))
			continue
		}
		if head.APIVersion != APIVersion {
			errs = append(errs, fmt.Errorf("%s: apiVersion %q: use %s", pos, head.APIVersion, APIVersion))
			continue
		}
		if head.Metadata.Name == "" {
			errs = append(errs, fmt.Errorf("%s: metadata.name is required", pos))
			continue
		}
		head.Metadata.Pos = pos
		key := head.Kind + "/" + head.Metadata.Name
		s.Positions[key] = pos
		var err error
		switch head.Kind {
		case KindTenant:
			var t Tenant
			err = doc.Decode(&t)
			t.Meta = head.Metadata
			s.Tenants = append(s.Tenants, t)
		case KindExposure:
			var x Exposure
			err = doc.Decode(&x)
			x.Meta = head.Metadata
			s.Exposures = append(s.Exposures, x)
		case KindService:
			var x Service
			err = doc.Decode(&x)
			x.Meta = head.Metadata
			s.Services = append(s.Services, x)
		default:
			err = fmt.Errorf("kind %q: use Tenant, Exposure or Service", head.Kind)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", pos, err))
		}
	}
	if len(errs) > 0 {
		return Set{}, errors.Join(errs...)
	}
	return s, nil
}

// Diff lists the documents that differ between old and new.
func Diff(old, new Set) (string, bool) {
	docs := func(s Set) map[string]string {
		m := map[string]string{}
		add := func(kind, name string, v any) {
			b, _ := json.Marshal(v)
			m[kind+"/"+name] = string(b)
		}
		for _, t := range s.Tenants {
			add(KindTenant, t.Meta.Name, t)
		}
		for _, x := range s.Exposures {
			add(KindExposure, x.Meta.Name, x)
		}
		for _, x := range s.Services {
			add(KindService, x.Meta.Name, x)
		}
		return m
	}
	o, n := docs(old), docs(new)
	var lines []string
	for k, v := range n {
		switch ov, ok := o[k]; {
		case !ok:
			lines = append(lines, "+ "+k)
		case ov != v:
			lines = append(lines, "~ "+k)
		}
	}
	for k := range o {
		if _, ok := n[k]; !ok {
			lines = append(lines, "- "+k)
		}
	}
	slices.Sort(lines)
	if len(lines) == 0 {
		return "", false
	}
	return strings.Join(lines, "\n") + "\n", true
}

// Command render renders a Helm chart the way `helm template` does, for machines without helm
// (it is not packaged for Debian). It implements what sluice's chart uses: Go text/template with
// sprig v3, helm's include, tpl, required, fail, toYaml, fromYaml, toJson, fromJson, the
// .Values, .Release, .Chart and .Template objects, values.yaml coalesced with -f files and
// --set overrides. It does not validate values against values.schema.json (the caller does,
// on the file written by --values-out) and knows nothing of subcharts, .Files, .Capabilities
// or lookup.
//
//	render [-f values.yaml]... [--set a.b=c]... [--name R] [--namespace N] [--strict]
//	       [--values-out merged.json] [--notes-out NOTES] CHART_DIR > manifests.yaml
//
// Exit status 1 with helm's message ("execution error at (...): ...") when a template fails.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"github.com/ghodss/yaml"
)

// helm's include depth limit (engine.recursionMaxNums).
const recursionMax = 1000

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var files, sets listFlag
	flag.Var(&files, "f", "values file (repeatable; later files win)")
	flag.Var(&sets, "set", "key.path=value override (repeatable; applied after -f files)")
	name := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	valuesOut := flag.String("values-out", "", "write the coalesced values as JSON to this file")
	notesOut := flag.String("notes-out", "", "write the rendered NOTES.txt to this file")
	strict := flag.Bool("strict", false, "fail on a missing map key (helm's Strict engine option, missingkey=error)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: render [-f FILE]... [--set K=V]... [--name R] [--namespace N] [--values-out F] [--notes-out F] CHART_DIR")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), files, sets, *name, *namespace, *valuesOut, *notesOut, *strict); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(chartDir string, files, sets []string, name, namespace, valuesOut, notesOut string, strict bool) error {
	chartMeta, err := readYAMLMap(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	chartName, _ := chartMeta["name"].(string)
	if chartName == "" {
		return errors.New("Chart.yaml: name is required")
	}

	values, err := readYAMLMap(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		user, err := readYAMLMap(f)
		if err != nil {
			return err
		}
		values = coalesce(user, values)
	}
	for _, s := range sets {
		if err := applySet(values, s); err != nil {
			return err
		}
	}
	if valuesOut != "" {
		j, err := json.MarshalIndent(values, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(valuesOut, append(j, '\n'), 0o644); err != nil {
			return err
		}
	}

	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": name, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart": map[string]interface{}{
			"Name":        chartName,
			"Version":     chartMeta["version"],
			"AppVersion":  chartMeta["appVersion"],
			"Description": chartMeta["description"],
			"Type":        chartMeta["type"],
			"APIVersion":  chartMeta["apiVersion"],
			"Home":        chartMeta["home"],
			"Keywords":    chartMeta["keywords"],
		},
	}

	// Template names are "CHART/templates/FILE" as in helm, so error messages match.
	tplDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(tplDir)
	if err != nil {
		return err
	}
	missingkey := "missingkey=zero"
	if strict {
		missingkey = "missingkey=error"
	}
	t := template.New("gotpl").Option(missingkey)
	t.Funcs(funcMap(t, missingkey))
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue // this chart has no template subdirectories
		}
		data, err := os.ReadFile(filepath.Join(tplDir, e.Name()))
		if err != nil {
			return err
		}
		n := path.Join(chartName, "templates", e.Name())
		if _, err := t.New(n).Parse(string(data)); err != nil {
			return fmt.Errorf("parse error in %s: %v", n, err)
		}
		names = append(names, n)
	}
	sort.Strings(names)

	var out bytes.Buffer
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		rendered, err := execute(t, n, top, chartName)
		if err != nil {
			return err
		}
		if base == "NOTES.txt" {
			if notesOut != "" {
				if err := os.WriteFile(notesOut, []byte(rendered), 0o644); err != nil {
					return err
				}
			}
			continue
		}
		if strings.TrimSpace(rendered) == "" {
			continue
		}
		// helm splits a file into documents at lines starting with "---" and drops empty ones.
		for _, doc := range splitDocs(rendered) {
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", n, doc)
		}
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

func execute(t *template.Template, name string, top map[string]interface{}, chartName string) (string, error) {
	vals := map[string]interface{}{}
	for k, v := range top {
		vals[k] = v
	}
	vals["Template"] = map[string]interface{}{
		"Name": name, "BasePath": path.Join(chartName, "templates"),
	}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, name, vals); err != nil {
		return "", cleanupError(err)
	}
	return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
}

// cleanupError shortens template errors to helm's form: "execution error at (FILE:L:C): MSG".
func cleanupError(err error) error {
	msg := err.Error()
	const marker = "HELM_ERR_START"
	if i := strings.Index(msg, marker); i >= 0 {
		inner := strings.TrimSuffix(msg[i+len(marker):], "HELM_ERR_END")
		if j := strings.Index(inner, "HELM_ERR_END"); j >= 0 {
			inner = inner[:j]
		}
		loc := ""
		if k := strings.Index(msg, "template: "); k >= 0 {
			rest := msg[k+len("template: "):]
			if c := strings.Index(rest, ": "); c >= 0 {
				loc = rest[:c]
			}
		}
		return fmt.Errorf("execution error at (%s): %s", loc, inner)
	}
	return err
}

func funcMap(t *template.Template, missingkey string) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	included := map[string]int{}
	f["include"] = func(name string, data interface{}) (string, error) {
		if included[name] > recursionMax {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		included[name]++
		defer func() { included[name]-- }()
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	f["tpl"] = func(text string, vals interface{}) (string, error) {
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		c.Option(missingkey)
		if _, err := c.New("tpl").Parse(text); err != nil {
			return "", err
		}
		var buf strings.Builder
		if err := c.ExecuteTemplate(&buf, "tpl", vals); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["required"] = func(msg string, val interface{}) (interface{}, error) {
		if val == nil {
			return nil, errors.New("HELM_ERR_START" + msg + "HELM_ERR_END")
		}
		if s, ok := val.(string); ok && s == "" {
			return nil, errors.New("HELM_ERR_START" + msg + "HELM_ERR_END")
		}
		return val, nil
	}
	f["fail"] = func(msg string) (string, error) {
		return "", errors.New("HELM_ERR_START" + msg + "HELM_ERR_END")
	}
	f["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	return f
}

func splitDocs(s string) []string {
	var docs []string
	var cur []string
	flush := func() {
		d := strings.TrimSpace(strings.Join(cur, "\n"))
		if d != "" {
			docs = append(docs, strings.TrimRight(strings.Join(cur, "\n"), " \n"))
		}
		cur = nil
	}
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "---") {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	for i, d := range docs {
		docs[i] = strings.TrimLeft(d, "\n")
	}
	return docs
}

// readYAMLMap parses YAML the way helm does (sigs.k8s.io/yaml: through JSON, so numbers are
// float64).
func readYAMLMap(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	return m, nil
}

// coalesce merges user values over chart defaults like helm's chartutil.CoalesceValues: maps
// merge key by key, anything else replaces, and a null removes the default.
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range user {
		if v == nil {
			delete(out, k)
			continue
		}
		um, uok := v.(map[string]interface{})
		dm, dok := out[k].(map[string]interface{})
		if uok && dok {
			out[k] = coalesce(um, dm)
		} else {
			out[k] = v
		}
	}
	return out
}

// applySet applies one --set override: a dotted key path (no list indexes or escapes) and a
// scalar typed like helm's strvals does (int64, bool, null, else string).
func applySet(values map[string]interface{}, s string) error {
	eq := strings.Index(s, "=")
	if eq <= 0 {
		return fmt.Errorf("--set %q: expected key=value", s)
	}
	keys := strings.Split(s[:eq], ".")
	raw := s[eq+1:]
	var val interface{} = raw
	if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
		val = i
	} else if raw == "true" || raw == "false" {
		val = raw == "true"
	} else if raw == "null" {
		val = nil
	}
	m := values
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[k] = next
		}
		m = next
	}
	last := keys[len(keys)-1]
	if val == nil {
		delete(m, last)
	} else {
		m[last] = val
	}
	return nil
}

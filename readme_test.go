package bulwark_test

import (
	"bytes"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's Go snippets are not written in the README: each ```go block
// is a copy of a region of a file that CI builds and runs, named by a
// marker on the line before the block:
//
//	<!-- snippet: examples/httpclient/main.go -->
//	```go
//	... the lines between "// snippet:start" and "// snippet:end" ...
//	```
//
// The file is an example program under examples/ (CI runs each one, and
// each exits 0 by itself) or a _test.go file (an Example test). The region
// is compared after removing the indentation common to its lines, so a
// snippet may come from inside a function. TestReadmeSnippets fails when a
// block and its region differ, when a go block has no marker or is not
// gofmt-clean, and when a marker names a file that CI does not run or that
// has no region.

var snippetMarker = regexp.MustCompile(`^<!-- snippet: (\S+) -->$`)

const (
	snippetStart = "// snippet:start"
	snippetEnd   = "// snippet:end"
)

func TestReadmeSnippets(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, errs := checkSnippets(string(readme), func(path string) (string, error) {
		b, err := os.ReadFile(filepath.FromSlash(path))
		return string(b), err
	})
	for _, err := range errs {
		t.Error(err)
	}
	if blocks == 0 {
		t.Error("README.md has no go blocks: is the marker check looking at the right file?")
	}
}

// TestCheckSnippets proves that the check above catches what it claims to.
func TestCheckSnippets(t *testing.T) {
	files := map[string]string{
		"examples/a/main.go": "package main\n\nfunc main() {\n\t// snippet:start\n\tx := 1\n\n\tif x > 0 {\n\t\tprintln(x)\n\t}\n\t// snippet:end\n}\n",
		"examples/b/main.go": "package main\n\nfunc main() {}\n",
		"x_test.go":          "package x_test\n\n// snippet:start\nfunc f() {}\n// snippet:end\n",
		"internal/y.go":      "package y\n\n// snippet:start\nfunc f() {}\n// snippet:end\n",
		"examples/c/main.go": "package main\n\n// snippet:start\n// snippet:start\n// snippet:end\n",
		"examples/d/main.go": "package main\n\nfunc main() {\n\t// snippet:start\n\tx  :=  1\n\t// snippet:end\n}\n",
	}
	read := func(path string) (string, error) {
		s, ok := files[path]
		if !ok {
			return "", fmt.Errorf("open %s: no such file", path)
		}
		return s, nil
	}
	const good = "<!-- snippet: examples/a/main.go -->\n```go\nx := 1\n\nif x > 0 {\n\tprintln(x)\n}\n```\n"
	for _, tc := range []struct {
		name, readme string
		wantErr      string // "" for no error
	}{
		{"matching block", "# t\n\n" + good + "\ntext\n", ""},
		{"blank line between marker and block", "<!-- snippet: examples/a/main.go -->\n\n```go\nx := 1\n\nif x > 0 {\n\tprintln(x)\n}\n```\n", ""},
		{"example test", "<!-- snippet: x_test.go -->\n```go\nfunc f() {}\n```\n", ""},
		{"other languages need no marker", "```sh\ngo run ./examples/drill\n```\n```\nplain output\n```\n", ""},
		{"no marker", "text\n```go\nx := 1\n```\n", "has no <!-- snippet: path --> marker"},
		{"edited block", strings.Replace(good, "x := 1", "x := 2", 1), "differs from examples/a/main.go"},
		{"indented with spaces", strings.Replace(good, "\tprintln", "    println", 1), "differs from examples/a/main.go"},
		{"missing file", "<!-- snippet: examples/zz/main.go -->\n```go\nx\n```\n", "no such file"},
		{"file without a region", "<!-- snippet: examples/b/main.go -->\n```go\nx\n```\n", "no // snippet:start"},
		{"two starts", "<!-- snippet: examples/c/main.go -->\n```go\nx\n```\n", "more than one"},
		{"file CI does not run", "<!-- snippet: internal/y.go -->\n```go\nfunc f() {}\n```\n", "not a program under examples/"},
		{"not gofmt-clean", "<!-- snippet: examples/d/main.go -->\n```go\nx  :=  1\n```\n", "not gofmt-clean"},
		{"statements", "<!-- snippet: examples/a/main.go -->\n```go\nx := 1\n\nif x > 0 {\n\tprintln(x)\n}\n```\n", ""},
		{"marker without a block", "<!-- snippet: examples/a/main.go -->\ntext\n", "not followed by a go block"},
		{"unclosed block", "<!-- snippet: examples/a/main.go -->\n```go\nx := 1\n", "not closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := checkSnippets(tc.readme, read)
			switch {
			case tc.wantErr == "" && len(errs) > 0:
				t.Errorf("unexpected errors: %v", errs)
			case tc.wantErr != "" && len(errs) == 0:
				t.Errorf("no error, want one containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(fmt.Sprint(errs), tc.wantErr):
				t.Errorf("errors %v, want one containing %q", errs, tc.wantErr)
			}
		})
	}
}

// checkSnippets checks every ```go block of readme against the region its
// marker names, reading files through read, and returns the number of go
// blocks with the problems found.
func checkSnippets(readme string, read func(path string) (string, error)) (int, []error) {
	var errs []error
	lines := strings.Split(readme, "\n")
	blocks := 0
	pending, pendingLine := "", 0 // a marker waiting for its block
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := snippetMarker.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			if pending != "" {
				errs = append(errs, fmt.Errorf("README.md:%d: marker for %s is not followed by a go block", pendingLine, pending))
			}
			pending, pendingLine = m[1], i+1
			continue
		}
		if !strings.HasPrefix(line, "```") {
			if pending != "" && strings.TrimSpace(line) != "" {
				errs = append(errs, fmt.Errorf("README.md:%d: marker for %s is not followed by a go block", pendingLine, pending))
				pending = ""
			}
			continue
		}
		// A fenced block: find its end.
		lang := strings.TrimSpace(strings.TrimPrefix(line, "```"))
		start := i + 1
		end := start
		for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
			end++
		}
		if end == len(lines) {
			errs = append(errs, fmt.Errorf("README.md:%d: code block not closed", i+1))
			break
		}
		i = end
		if lang != "go" {
			if pending != "" {
				errs = append(errs, fmt.Errorf("README.md:%d: marker for %s is not followed by a go block", pendingLine, pending))
				pending = ""
			}
			continue
		}
		blocks++
		if pending == "" {
			errs = append(errs, fmt.Errorf("README.md:%d: go block has no <!-- snippet: path --> marker on the line before it", start))
			continue
		}
		path := pending
		pending = ""
		if err := runByCI(path); err != nil {
			errs = append(errs, fmt.Errorf("README.md:%d: %w", pendingLine, err))
			continue
		}
		src, err := read(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("README.md:%d: %w", pendingLine, err))
			continue
		}
		region, err := snippetRegion(src)
		if err != nil {
			errs = append(errs, fmt.Errorf("README.md:%d: %s: %w", pendingLine, path, err))
			continue
		}
		block := strings.Join(lines[start:end], "\n")
		if block != region {
			errs = append(errs, fmt.Errorf("README.md:%d: go block differs from %s (%s); copy the region between %q and %q into the README",
				start, path, firstDifference(block, region), snippetStart, snippetEnd))
			continue
		}
		if err := gofmtClean(block); err != nil {
			errs = append(errs, fmt.Errorf("README.md:%d: go block from %s: %w", start, path, err))
		}
	}
	if pending != "" {
		errs = append(errs, fmt.Errorf("README.md:%d: marker for %s is not followed by a go block", pendingLine, pending))
	}
	return blocks, errs
}

// runByCI reports whether .ci/run builds and runs path: a program under
// examples/ (every one is run) or a test file (Example tests run with go
// test).
func runByCI(path string) error {
	if strings.HasSuffix(path, "_test.go") {
		return nil
	}
	parts := strings.Split(path, "/")
	if len(parts) == 3 && parts[0] == "examples" && strings.HasSuffix(parts[2], ".go") {
		return nil
	}
	return fmt.Errorf("%s is not a program under examples/ nor a _test.go file, so CI does not run it", path)
}

// snippetRegion returns the lines of src between the start and end
// markers, without their common indentation and surrounding blank lines.
func snippetRegion(src string) (string, error) {
	var region []string
	in, seen := false, false
	for _, line := range strings.Split(src, "\n") {
		switch strings.TrimSpace(line) {
		case snippetStart:
			if in || seen {
				return "", fmt.Errorf("more than one %q", snippetStart)
			}
			in, seen = true, true
			continue
		case snippetEnd:
			if !in {
				return "", fmt.Errorf("%q without %q", snippetEnd, snippetStart)
			}
			in = false
			continue
		}
		if in {
			region = append(region, line)
		}
	}
	switch {
	case !seen:
		return "", fmt.Errorf("no %s line", snippetStart)
	case in:
		return "", fmt.Errorf("no %s line after %s", snippetEnd, snippetStart)
	}
	for len(region) > 0 && strings.TrimSpace(region[0]) == "" {
		region = region[1:]
	}
	for len(region) > 0 && strings.TrimSpace(region[len(region)-1]) == "" {
		region = region[:len(region)-1]
	}
	return dedent(region), nil
}

// dedent removes the leading whitespace that every non-blank line shares.
func dedent(lines []string) string {
	prefix, first := "", true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = indent, false
			continue
		}
		for !strings.HasPrefix(indent, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimPrefix(l, prefix)
		if strings.TrimSpace(out[i]) == "" {
			out[i] = ""
		}
	}
	return strings.Join(out, "\n")
}

// gofmtClean reports whether a snippet reads as gofmt would print it: as
// declarations in a file of their own or, failing that, as statements in a
// function body.
func gofmtClean(block string) error {
	src := "package p\n\n" + block + "\n"
	out, err := format.Source([]byte(src))
	if err != nil {
		var body strings.Builder
		body.WriteString("package p\n\nfunc _() {\n")
		for _, l := range strings.Split(block, "\n") {
			if l != "" {
				body.WriteString("\t" + l)
			}
			body.WriteString("\n")
		}
		body.WriteString("}\n")
		src = body.String()
		if out, err = format.Source([]byte(src)); err != nil {
			return fmt.Errorf("does not parse as Go declarations or statements: %w", err)
		}
	}
	if !bytes.Equal(out, []byte(src)) {
		return fmt.Errorf("not gofmt-clean (%s)", firstDifference(src, string(out)))
	}
	return nil
}

// firstDifference describes the first line where got and want differ.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d of the block: README has %q, source has %q", i+1, gl, wl)
		}
	}
	return "identical lines"
}

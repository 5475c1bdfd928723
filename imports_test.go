package bulwark_test

import (
	"go/build"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The import rules of CONTRIBUTING.md ("Import rules"), enforced. A rule
// that changes changes here and there together.

const module = "github.com/bulwark-go/bulwark"

// primitives are the packages that give users a capability. By default a
// primitive imports no other primitive: each is usable alone.
var primitives = []string{
	"breaker", "retry", "timeout", "limit", "degrade", "idempotency",
	"session", "lb", "cache", "chaos", "health",
}

// mayImport lists the exceptions: which primitives a primitive may import.
var mayImport = map[string][]string{
	"lb":      {"breaker"},          // a breaker per endpoint
	"health":  {"breaker", "lb"},    // readiness from breaker states and endpoint health
	"degrade": {"breaker", "limit"}, // fallbacks that recognise their rejections
}

// top are the packages at the top of the graph: they may import any
// primitive (grpcx adapts them all; the preset package assembles them).
var top = []string{"grpcx", "stack"}

func TestImportRules(t *testing.T) {
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "benchmarks") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(p, build.ImportComment)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			return err
		}
		rel := filepath.ToSlash(p)
		checkImports(t, rel, pkg.Imports, false)
		checkImports(t, rel, append(pkg.TestImports, pkg.XTestImports...), true)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkImports(t *testing.T, dir string, imports []string, test bool) {
	t.Helper()
	kind := "imports"
	if test {
		kind = "test imports"
	}
	first := strings.Split(dir, "/")[0]
	inGRPCX := first == "grpcx"
	inExamples := first == "examples"
	for _, imp := range imports {
		switch {
		case strings.HasPrefix(imp, "google.golang.org/grpc"):
			// gRPC only in grpcx and its subpackages, the examples, and
			// tests anywhere (tests of the root's README examples).
			if !inGRPCX && !inExamples && !test {
				t.Errorf("%s %s: only grpcx and its subpackages may import gRPC", dir, imp)
			}
		case strings.HasPrefix(imp, "github.com/redis/go-redis/"):
			// go-redis only in <primitive>/redisstore, the Redis test
			// harness, the examples, and tests.
			if path.Base(dir) != "redisstore" && dir != "internal/redistest" && !inExamples && !test {
				t.Errorf("%s %s: only a redisstore subpackage may import go-redis", dir, imp)
			}
		case strings.HasPrefix(imp, module+"/examples"):
			t.Errorf("%s %s: nothing imports the examples", dir, imp)
		case strings.HasPrefix(imp, module+"/"):
			checkInternal(t, dir, kind, strings.TrimPrefix(imp, module+"/"), test)
		}
	}
}

func checkInternal(t *testing.T, dir, kind, target string, test bool) {
	t.Helper()
	tfirst := strings.Split(target, "/")[0]
	dfirst := strings.Split(dir, "/")[0]
	if !slices.Contains(primitives, tfirst) || tfirst == dfirst {
		return // root, internal/..., grpcx from examples, own subpackages
	}
	switch {
	case dfirst == "examples", slices.Contains(top, dfirst):
		return
	case dfirst == "internal":
		if !test {
			t.Errorf("%s %s %s: internal packages import no primitive", dir, kind, target)
		}
	case slices.Contains(primitives, dfirst):
		if test {
			return // a test may combine primitives to show how they compose
		}
		if !slices.Contains(mayImport[dfirst], tfirst) {
			t.Errorf("%s %s %s: a primitive imports no other primitive unless CONTRIBUTING.md's import rules allow it", dir, kind, target)
		}
	case dir == ".":
		if !test {
			t.Errorf("root package imports %s: every primitive imports the root, so the root imports none of them", target)
		}
	}
}

// TestImportRulesSeeTheTree guards the walk above: a test that checks
// nothing because it found nothing would pass forever.
func TestImportRulesSeeTheTree(t *testing.T) {
	for _, dir := range []string{"breaker", "retry", "grpcx"} {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		pkg, err := build.ImportDir(dir, 0)
		if err != nil || len(pkg.Imports) == 0 {
			t.Fatalf("build.ImportDir(%s) found no imports (%v)", dir, err)
		}
	}
}

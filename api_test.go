package bulwark_test

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// CONTRIBUTING.md ("Time"): no exported identifier has a type from
// internal/. A user cannot name, implement or build such a type, so an
// exported field, parameter or result of one is API only the project can
// use (issue 6 found Config.Clock). TestNoInternalTypesInAPI type-checks
// every package that is not internal and fails on any exported name whose
// type mentions a type of an internal package.

// exportData maps every import path that the module's packages depend on
// to the file holding its compiled export data, from one `go list`.
func exportData(t *testing.T) map[string]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.String())
	}
	m := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		path, file, ok := strings.Cut(sc.Text(), "\t")
		if ok && file != "" {
			m[path] = file
		}
	}
	return m
}

// typeCheck type-checks the given files of one package, importing its
// dependencies from their export data.
func typeCheck(t *testing.T, exports map[string]string, path string, files map[string]string) *types.Package {
	t.Helper()
	fset := token.NewFileSet()
	var parsed []*ast.File
	for name, src := range files {
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
	}
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})
	conf := types.Config{Importer: imp}
	pkg, err := conf.Check(path, fset, parsed, nil)
	if err != nil {
		t.Fatalf("type-checking %s: %v", path, err)
	}
	return pkg
}

// isInternal reports whether path is an internal package of this module.
// Other modules' internal packages are
// theirs: grpc's status.Status is an alias of a type in
// google.golang.org/grpc/internal/status, and users name it as status.Status.
func isInternal(path string) bool {
	if !strings.HasPrefix(path, module+"/") {
		return false
	}
	return slices.Contains(strings.Split(path, "/"), "internal")
}

// internalTypes lists every exported identifier of pkg (package-level
// names, exported fields and methods of exported types, the parameters and
// results of exported functions and methods) whose type mentions a named
// type from an internal package.
func internalTypes(pkg *types.Package) []string {
	var bad []string
	report := func(where string, typ types.Type) {
		if n := internalNamed(typ, map[types.Type]bool{}); n != "" {
			bad = append(bad, fmt.Sprintf("%s.%s has type %s, from an internal package", pkg.Path(), where, n))
		}
	}
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		switch obj := obj.(type) {
		case *types.TypeName:
			if obj.IsAlias() {
				report(name, obj.Type())
				continue
			}
			named, ok := obj.Type().(*types.Named)
			if !ok {
				continue
			}
			// The underlying type: exported fields, interface methods, or
			// the type itself (type X []internal.Y).
			switch u := named.Underlying().(type) {
			case *types.Struct:
				for f := range u.Fields() {
					if f.Exported() {
						report(name+"."+f.Name(), f.Type())
					}
				}
			case *types.Interface:
				for m := range u.Methods() {
					if m.Exported() {
						report(name+"."+m.Name(), m.Type())
					}
				}
			default:
				report(name, u)
			}
			for m := range named.Methods() {
				if m.Exported() {
					report(name+"."+m.Name(), m.Type())
				}
			}
		default: // *types.Func, *types.Var, *types.Const
			report(name, obj.Type())
		}
	}
	return bad
}

// internalNamed returns the name of the first named type from an internal
// package that typ mentions, or "". It does not look inside the underlying
// types of named types: an exported type of this module is checked on its
// own, and another module's internals are that module's business.
func internalNamed(typ types.Type, seen map[types.Type]bool) string {
	if typ == nil || seen[typ] {
		return ""
	}
	seen[typ] = true
	switch t := typ.(type) {
	case *types.Alias:
		// An alias names its target: type X = internal.Y exposes Y.
		return internalNamed(types.Unalias(t), seen)
	case *types.Named:
		if obj := t.Obj(); obj.Pkg() != nil && isInternal(obj.Pkg().Path()) {
			return obj.Pkg().Path() + "." + obj.Name()
		}
		for a := range t.TypeArgs().Types() {
			if n := internalNamed(a, seen); n != "" {
				return n
			}
		}
	case *types.Pointer:
		return internalNamed(t.Elem(), seen)
	case *types.Slice:
		return internalNamed(t.Elem(), seen)
	case *types.Array:
		return internalNamed(t.Elem(), seen)
	case *types.Chan:
		return internalNamed(t.Elem(), seen)
	case *types.Map:
		if n := internalNamed(t.Key(), seen); n != "" {
			return n
		}
		return internalNamed(t.Elem(), seen)
	case *types.Signature:
		for _, tuple := range []*types.Tuple{t.Params(), t.Results()} {
			for v := range tuple.Variables() {
				if n := internalNamed(v.Type(), seen); n != "" {
					return n
				}
			}
		}
		for tp := range t.TypeParams().TypeParams() {
			if n := internalNamed(tp.Constraint(), seen); n != "" {
				return n
			}
		}
	case *types.Struct:
		for f := range t.Fields() {
			if f.Exported() || f.Embedded() {
				if n := internalNamed(f.Type(), seen); n != "" {
					return n
				}
			}
		}
	case *types.Interface:
		for i := range t.NumEmbeddeds() {
			if n := internalNamed(t.EmbeddedType(i), seen); n != "" {
				return n
			}
		}
		for m := range t.ExplicitMethods() {
			if n := internalNamed(m.Type(), seen); n != "" {
				return n
			}
		}
	case *types.Union:
		for i := range t.Len() {
			if n := internalNamed(t.Term(i).Type(), seen); n != "" {
				return n
			}
		}
	case *types.TypeParam:
		return internalNamed(t.Constraint(), seen)
	}
	return ""
}

// publicPackages returns, for every directory of the module holding a
// non-internal, non-main package (examples and benchmarks excluded), its
// import path and its non-test Go files.
func publicPackages(t *testing.T) map[string]map[string]string {
	t.Helper()
	pkgs := make(map[string]map[string]string)
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
			name == "testdata" || name == "benchmarks" || name == "examples" || name == "internal") {
			return filepath.SkipDir
		}
		bp, err := build.ImportDir(p, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			return err
		}
		if bp.Name == "main" {
			return nil
		}
		files := make(map[string]string)
		for _, f := range bp.GoFiles {
			src, err := os.ReadFile(filepath.Join(p, f))
			if err != nil {
				return err
			}
			files[filepath.Join(p, f)] = string(src)
		}
		path := module
		if p != "." {
			path += "/" + filepath.ToSlash(p)
		}
		pkgs[path] = files
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestNoInternalTypesInAPI(t *testing.T) {
	exports := exportData(t)
	pkgs := publicPackages(t)
	for _, want := range []string{module, module + "/breaker", module + "/retry", module + "/grpcx"} {
		if _, ok := pkgs[want]; !ok {
			t.Fatalf("the walk did not find %s (found %d packages)", want, len(pkgs))
		}
	}
	for path, files := range pkgs {
		for _, msg := range internalTypes(typeCheck(t, exports, path, files)) {
			t.Error(msg)
		}
	}
}

// TestNoInternalTypesInAPISeesViolations guards the check above: each of
// these declarations exposes a type of internal/clock and must be reported.
func TestNoInternalTypesInAPISeesViolations(t *testing.T) {
	exports := exportData(t)
	src := `package p

import (
	"time"

	"github.com/bulwark-go/bulwark/internal/clock"
)

type Config struct {
	Name  string
	Clock clock.Clock     // an exported field
	clock clock.Clock     // unexported: fine
}

type Embeds struct{ clock.Clock }

type Slice []clock.Clock

type Alias = clock.Clock

type Iface interface{ Now(clock.Clock) time.Time }

type T struct{}

func (T) Method() *clock.Clock { return nil }
func (T) method() clock.Clock  { return nil }

func Func(f func(map[string]clock.Clock)) {}

var Var chan clock.Clock

func unexported(clock.Clock) {}
`
	pkg := typeCheck(t, exports, "example.com/p", map[string]string{"p.go": src})
	got := internalTypes(pkg)
	var names []string
	for _, msg := range got {
		where, _, _ := strings.Cut(strings.TrimPrefix(msg, "example.com/p."), " ")
		names = append(names, where)
	}
	slices.Sort(names)
	want := []string{"Alias", "Config.Clock", "Embeds.Clock", "Func", "Iface.Now", "Slice", "T.Method", "Var"}
	if !slices.Equal(names, want) {
		t.Errorf("reported %q, want %q\nmessages: %q", names, want, got)
	}
}

// TestOnlyStripeLinknames: CONTRIBUTING.md ("Hot paths"): the only
// linkname left is internal/stripe's procPin (with its procUnpin).
func TestOnlyStripeLinknames(t *testing.T) {
	allowed := map[string][]string{
		"internal/stripe/stripe.go": {"procPin runtime.procPin", "procUnpin runtime.procUnpin"},
	}
	found := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(src)) {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), "//go:linkname ")
			if !ok {
				continue
			}
			found++
			if !slices.Contains(allowed[filepath.ToSlash(p)], strings.TrimSpace(rest)) {
				t.Errorf("%s: //go:linkname %s: the only linknames allowed are internal/stripe's procPin and procUnpin", p, strings.TrimSpace(rest))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("found no linkname at all: the walk is broken (internal/stripe has two)")
	}
}

package redistest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportRules enforces docs/redis.md: outside tests, go-redis is
// imported only by redisstore packages, this harness and the examples, and
// miniredis only by this harness and the examples, so a user of a memory
// store never compiles either.
func TestImportRules(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "benchmarks" || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir // another module; VCS and CI files
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		allowed := dir == "internal/redistest" || dir == "examples" || strings.HasPrefix(dir, "examples/")
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case strings.HasPrefix(p, "github.com/redis/go-redis/"):
				if !allowed && filepath.Base(dir) != "redisstore" {
					t.Errorf("%s imports %s: only redisstore packages may (docs/redis.md)", rel, p)
				}
			case strings.HasPrefix(p, "github.com/alicebob/miniredis/"):
				if !allowed {
					t.Errorf("%s imports %s outside tests: only internal/redistest and examples may", rel, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

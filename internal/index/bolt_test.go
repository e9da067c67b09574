package index

import (
	"path/filepath"
	"testing"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/index/indextest"
)

func TestIndexSuite(t *testing.T) {
	indextest.Run(t, func(t *testing.T) content.Index {
		b, err := Open(filepath.Join(t.TempDir(), "index.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

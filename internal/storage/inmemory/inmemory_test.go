package inmemory_test

import (
	"testing"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/inmemory"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

func TestDriver(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver { return inmemory.New() })
}

package main

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Layers of any size are generated, not stored: a layer is a sequence of
// 4 MiB segments, each a copy of one pseudo-random block (from a seeded
// ChaCha8, so runs are reproducible) whose first 16 bytes are replaced by
// the layer's id and the segment's number. Every layer has its own digest,
// no two segments are equal, the client needs 4 MiB of memory whatever the
// layer size, and writing a segment to the socket is a memcpy away.

const blockSize = 4 << 20

type layerGen struct {
	block []byte
}

func newLayerGen(seed uint64) *layerGen {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	block := make([]byte, blockSize)
	rand.NewChaCha8(key).Read(block)
	return &layerGen{block: block}
}

// layer is one generated layer; it is a replayable request body.
type layer struct {
	gen  *layerGen
	id   uint64
	size int64
}

func (l layer) Len() int64 { return l.size }

func (l layer) WriteTo(w io.Writer) (int64, error) {
	var hdr [16]byte
	var n int64
	for seg := uint64(0); n < l.size; seg++ {
		binary.LittleEndian.PutUint64(hdr[:8], l.id)
		binary.LittleEndian.PutUint64(hdr[8:], seg)
		chunk := min(int64(blockSize), l.size-n)
		h := min(int64(len(hdr)), chunk)
		m, err := w.Write(hdr[:h])
		n += int64(m)
		if err != nil {
			return n, err
		}
		m, err = w.Write(l.gen.block[h:chunk])
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (l layer) digest() digest.Digest {
	h := sha256.New()
	l.WriteTo(h)
	return digest.NewDigest(digest.SHA256, h)
}

// digestAll hashes layers in parallel (before any timing starts).
func digestAll(ls []layer) []digest.Digest {
	out := make([]digest.Digest, len(ls))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range ls {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			out[i] = ls[i].digest()
			<-sem
		}()
	}
	wg.Wait()
	return out
}

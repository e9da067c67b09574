package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/bench/seed"
)

// acceptManifests is what docker and crane send when they resolve a tag;
// without it distribution refuses OCI manifests and rewrites Docker ones to
// schema 1.
const acceptManifests = "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

// phases are the times one blob upload spent in each request: the body
// goes with the PATCH ("patch" mode) or the PUT ("put" mode); the PUT of
// "patch" mode is where the server verifies, syncs and publishes the blob.
type phases struct {
	start, patch, put time.Duration
}

// pushBlob uploads one blob the way docker and crane do: HEAD to see if it is
// there, POST to open an upload, then either one streamed PATCH and an empty
// PUT with the digest ("patch") or a PUT carrying the whole blob ("put").
func pushBlob(c *conn, repo string, b body, d digest.Digest, mode string) error {
	_, err := pushBlobTimed(c, repo, b, d, mode)
	return err
}

func pushBlobTimed(c *conn, repo string, b body, d digest.Digest, mode string) (phases, error) {
	var ph phases
	t0 := time.Now()
	resp, err := c.do(http.MethodHead, "/v2/"+repo+"/blobs/"+string(d), nil, nil, true)
	if err != nil {
		return ph, err
	}
	if resp.Status == http.StatusOK {
		return ph, nil
	}
	resp, err = c.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil, true)
	ph.start = time.Since(t0)
	if err != nil {
		return ph, err
	}
	if err := expect(resp, http.StatusAccepted); err != nil {
		return ph, fmt.Errorf("start upload: %w", err)
	}
	loc, err := targetOf(resp.Header.Get("Location"))
	if err != nil {
		return ph, err
	}
	octet := []string{"Content-Type: application/octet-stream"}
	switch mode {
	case "patch":
		t1 := time.Now()
		resp, err = c.do(http.MethodPatch, loc, octet, b, true)
		ph.patch = time.Since(t1)
		if err != nil {
			return ph, err
		}
		if err := expect(resp, http.StatusAccepted, http.StatusNoContent); err != nil {
			return ph, fmt.Errorf("upload chunk: %w", err)
		}
		if loc, err = targetOf(resp.Header.Get("Location")); err != nil {
			return ph, err
		}
		t2 := time.Now()
		resp, err = c.do(http.MethodPut, withQuery(loc, "digest", string(d)), nil, nil, true)
		ph.put = time.Since(t2)
	case "put":
		t2 := time.Now()
		resp, err = c.do(http.MethodPut, withQuery(loc, "digest", string(d)), octet, b, true)
		ph.put = time.Since(t2)
	default:
		return ph, fmt.Errorf("unknown upload mode %q (patch or put)", mode)
	}
	if err != nil {
		return ph, err
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return ph, fmt.Errorf("finish upload: %w", err)
	}
	return ph, nil
}

func pushManifest(c *conn, repo, ref string, manifest []byte) error {
	resp, err := c.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref,
		[]string{"Content-Type: " + seed.MediaTypeManifest}, byteBody(manifest), true)
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return fmt.Errorf("put manifest %s:%s: %w", repo, ref, err)
	}
	return nil
}

func cmdPushLarge(args []string) error {
	var c common
	fs := newFlags("push-large", &c)
	rawURL := fs.String("url", "http://127.0.0.1:5000", "registry base URL")
	repo := fs.String("repo", "bench/large", "repository")
	tagPrefix := fs.String("tag", "r", "tags are this plus the repetition number")
	layers := fs.Int("layers", 4, "layers per image")
	sizeStr := fs.String("size", "64MiB", "size of each layer")
	parallel := fs.Int("parallel", 4, "layers uploaded at once, one connection each (docker: 5, crane: 4)")
	mode := fs.String("mode", "patch", "patch: POST, one streamed PATCH, PUT (docker); put: POST, PUT with the body (monolithic)")
	repeat := fs.Int("repeat", 3, "push this many images (new content each); the figure is the median")
	seedN := fs.Uint64("seed", 1, "content seed")
	watchPID := fs.Int("watch-pid", 0, "sample this process's VmRSS during the pushes and report the maximum")
	fs.Parse(args)
	host, err := hostOf(*rawURL)
	if err != nil {
		return err
	}
	size, err := parseSize(*sizeStr)
	if err != nil {
		return err
	}
	if *layers < 1 || *repeat < 1 || *parallel < 1 {
		return fmt.Errorf("-layers, -repeat and -parallel must be at least 1")
	}

	gen := newLayerGen(*seedN)
	all := make([]layer, 0, *layers**repeat)
	for r := range *repeat {
		for i := range *layers {
			all = append(all, layer{gen: gen, id: *seedN<<32 | uint64(r)<<16 | uint64(i), size: size})
		}
	}
	digests := digestAll(all)

	conns := make([]*conn, *parallel)
	for i := range conns {
		conns[i] = newConn(host)
		defer conns[i].close()
	}
	var rss *rssWatch
	if *watchPID > 0 {
		if rss, err = watchRSS(*watchPID, 10*time.Millisecond); err != nil {
			return err
		}
	}
	var rates, patchS, putS []float64
	for r := range *repeat {
		ls, ds := all[r**layers:(r+1)**layers], digests[r**layers:(r+1)**layers]
		start := time.Now()
		phs := make([]phases, len(ls))
		err := fanOut(indices(len(ls)), *parallel, func(w, i int) error {
			ph, err := pushBlobTimed(conns[w], *repo, ls[i], ds[i], *mode)
			phs[i] = ph
			if err != nil {
				return fmt.Errorf("layer %d: %w", i, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		config := seed.ConfigJSON(ds[0], fmt.Sprintf("large-%d-%d", *seedN, r))
		cd := digest.FromBytes(config)
		if err := pushBlob(conns[0], *repo, byteBody(config), cd, *mode); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		descs := make([]seed.Descriptor, len(ls))
		for i := range ls {
			descs[i] = seed.Descriptor{MediaType: seed.MediaTypeLayer, Digest: ds[i], Size: size}
		}
		manifest := seed.ManifestJSON(cd, int64(len(config)), descs, nil)
		if err := pushManifest(conns[0], *repo, fmt.Sprintf("%s%d", *tagPrefix, r), manifest); err != nil {
			return err
		}
		elapsed := time.Since(start)
		rates = append(rates, float64(size)*float64(*layers)/mib/elapsed.Seconds())
		for _, ph := range phs {
			patchS = append(patchS, ph.patch.Seconds())
			putS = append(putS, ph.put.Seconds())
		}
	}
	v := map[string]any{
		"mibps":       round3(median(rates)),
		"mibps_runs":  roundAll(rates),
		"layers":      *layers,
		"layer_bytes": size,
		"parallel":    *parallel,
		"mode":        *mode,
		"ref":         fmt.Sprintf("%s:%s0", *repo, *tagPrefix),
		// Per layer, median: the body's request and the finishing PUT.
		"layer_patch_s": round3(median(patchS)),
		"layer_put_s":   round3(median(putS)),
	}
	human := fmt.Sprintf("%.0f MiB/s (median of %d; %d x %s, %d at once, %s; per layer: PATCH %.3f s, PUT %.3f s)",
		median(rates), len(rates), *layers, *sizeStr, *parallel, *mode, median(patchS), median(putS))
	if rss != nil {
		maxRSS, samples := rss.stop()
		v["max_rss_mib"] = round3(float64(maxRSS) / mib)
		v["rss_samples"] = samples
		human += fmt.Sprintf("; server max RSS %.1f MiB", float64(maxRSS)/mib)
	}
	return c.emit("push-large", v, human)
}

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = round3(x)
	}
	return out
}

// smallImage is a unique ~1 KiB layer, its config and manifest.
type smallImage struct {
	repo string
	img  seed.Image
}

func cmdPushSmall(args []string) error {
	var c common
	fs := newFlags("push-small", &c)
	rawURL := fs.String("url", "http://127.0.0.1:5000", "registry base URL")
	prefix := fs.String("repo-prefix", "bench/small", "image i goes to PREFIX-<run>/img<i>, tag latest")
	images := fs.Int("images", 200, "images to push")
	workers := fs.Int("workers", 8, "concurrent pushers, one connection each")
	layerSize := fs.Int("layer-size", 1024, "bytes per layer")
	mode := fs.String("mode", "patch", "upload mode: patch or put (see push-large)")
	repeat := fs.Int("repeat", 1, "runs (new images each); the figure is the median")
	seedN := fs.Uint64("seed", 2, "content seed")
	fs.Parse(args)
	host, err := hostOf(*rawURL)
	if err != nil {
		return err
	}
	var rates []float64
	for r := range *repeat {
		imgs := make([]smallImage, *images)
		for i := range imgs {
			var key [32]byte
			key[0], key[1] = byte(*seedN), byte(r)
			key[2], key[3], key[4] = byte(i), byte(i>>8), byte(i>>16)
			l := make([]byte, *layerSize)
			rand.NewChaCha8(key).Read(l)
			config := seed.ConfigJSON(digest.FromBytes(l), fmt.Sprintf("small-%d-%d-%d", *seedN, r, i))
			repo := fmt.Sprintf("%s-%d/img%04d", *prefix, r, i)
			imgs[i] = smallImage{repo: repo, img: seed.NewImage(config, l, repo)}
		}
		conns := make([]*conn, *workers)
		for w := range conns {
			conns[w] = newConn(host)
		}
		start := time.Now()
		err := fanOut(imgs, *workers, func(w int, im smallImage) error {
			c := conns[w]
			err := pushBlob(c, im.repo, byteBody(im.img.Layer), im.img.LayerDigest, *mode)
			if err == nil {
				err = pushBlob(c, im.repo, byteBody(im.img.Config), im.img.ConfigDigest, *mode)
			}
			if err == nil {
				err = pushManifest(c, im.repo, "latest", im.img.Manifest)
			}
			if err != nil {
				return fmt.Errorf("image %s: %w", im.repo, err)
			}
			return nil
		})
		elapsed := time.Since(start)
		for _, c := range conns {
			c.close()
		}
		if err != nil {
			return err
		}
		rates = append(rates, float64(*images)/elapsed.Seconds())
	}
	return c.emit("push-small", map[string]any{
		"images_per_s": round3(median(rates)),
		"runs":         roundAll(rates),
		"images":       *images,
		"workers":      *workers,
		"mode":         *mode,
	}, fmt.Sprintf("%.1f images/s (median of %d; %d images, %d workers)", median(rates), len(rates), *images, *workers))
}

func cmdPull(args []string) error {
	var c common
	fs := newFlags("pull", &c)
	rawURL := fs.String("url", "http://127.0.0.1:5000", "registry base URL")
	ref := fs.String("ref", "bench/large:r0", "image to pull (repo:tag)")
	conns := fs.Int("conns", 4, "blobs downloaded at once")
	repeat := fs.Int("repeat", 3, "pulls; the figure is the median")
	fs.Parse(args)
	host, err := hostOf(*rawURL)
	if err != nil {
		return err
	}
	repo, tag, err := splitRef(*ref)
	if err != nil {
		return err
	}
	cs := make([]*conn, *conns)
	for i := range cs {
		cs[i] = newConn(host)
		defer cs[i].close()
	}
	resp, err := cs[0].do(http.MethodGet, "/v2/"+repo+"/manifests/"+tag, []string{acceptManifests}, nil, true)
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusOK); err != nil {
		return err
	}
	var m struct {
		Config seed.Descriptor   `json:"config"`
		Layers []seed.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(resp.Body, &m); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	blobs := append([]seed.Descriptor{m.Config}, m.Layers...)
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	var rates []float64
	for range *repeat {
		start := time.Now()
		err := fanOut(blobs, *conns, func(w int, b seed.Descriptor) error {
			resp, err := cs[w].do(http.MethodGet, "/v2/"+repo+"/blobs/"+string(b.Digest), nil, nil, false)
			if err == nil && (resp.Status != http.StatusOK || resp.Len != b.Size) {
				err = fmt.Errorf("blob %s: status %d, %d of %d bytes", b.Digest, resp.Status, resp.Len, b.Size)
			}
			return err
		})
		elapsed := time.Since(start)
		if err != nil {
			return err
		}
		rates = append(rates, float64(total)/mib/elapsed.Seconds())
	}
	// Range: the middle 1000 bytes of the largest layer.
	rangeOK := false
	big := blobs[len(blobs)-1]
	if big.Size > 2000 {
		first := big.Size / 2
		resp, err := cs[0].do(http.MethodGet, "/v2/"+repo+"/blobs/"+string(big.Digest),
			[]string{fmt.Sprintf("Range: bytes=%d-%d", first, first+999)}, nil, false)
		rangeOK = err == nil && resp.Status == http.StatusPartialContent && resp.Len == 1000 &&
			resp.Header.Get("Content-Range") == fmt.Sprintf("bytes %d-%d/%d", first, first+999, big.Size)
	}
	return c.emit("pull", map[string]any{
		"mibps":    round3(median(rates)),
		"runs":     roundAll(rates),
		"bytes":    total,
		"blobs":    len(blobs),
		"conns":    *conns,
		"range_ok": rangeOK,
	}, fmt.Sprintf("%.0f MiB/s (median of %d; %d blobs, %d MiB, %d at once); Range request answered 206: %v",
		median(rates), len(rates), len(blobs), total/mib, *conns, rangeOK))
}

func splitRef(ref string) (repo, tag string, err error) {
	if repo, d, ok := strings.Cut(ref, "@"); ok {
		return repo, d, nil
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return "", "", fmt.Errorf("reference %q has no :tag", ref)
	}
	return ref[:i], ref[i+1:], nil
}

package api

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/internal/content"
)

func (h *Handler) getBlob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := content.ParseDigest(rt.arg)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	info, err := h.reg.Blob(r.Context(), rt.name, d)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	etag := `"` + string(d) + `"`
	hdr := w.Header()
	hdr.Set("Docker-Content-Digest", string(d))
	hdr.Set("ETag", etag)
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("Content-Type", "application/octet-stream")
	// Content-addressed: the bytes behind a digest never change.
	hdr.Set("Cache-Control", "max-age=31536000")
	if match := r.Header.Get("If-None-Match"); match != "" && match == etag {
		w.WriteHeader(http.StatusNotModified)
		if r.Method == http.MethodGet {
			h.emit(r, blobEvent(ActionPull, rt.name, info)) // registry:2 counts a revalidation as a pull
		}
		return
	}

	start, length, status := int64(0), info.Size, http.StatusOK
	if spec := r.Header.Get("Range"); spec != "" {
		s, l, ok := parseRange(spec, info.Size)
		if !ok {
			hdr.Set("Content-Range", "bytes */"+itoa(info.Size))
			writeJSONError(w, http.StatusRequestedRangeNotSatisfiable, string(content.CodeBlobUnknown),
				"range "+strconv.Quote(spec)+" cannot be satisfied for a blob of "+itoa(info.Size)+" bytes", nil)
			return
		}
		start, length, status = s, l, http.StatusPartialContent
		hdr.Set("Content-Range", "bytes "+itoa(s)+"-"+itoa(s+l-1)+"/"+itoa(info.Size))
	}
	if r.Method == http.MethodGet && h.redirect {
		if url, ok, err := h.reg.BlobURL(r.Context(), d); err != nil {
			h.log.WarnContext(r.Context(), "cannot make a redirect URL, serving the blob directly", "digest", d, "err", err)
		} else if ok {
			hdr.Del("Content-Range")
			hdr.Set("Location", url)
			w.WriteHeader(http.StatusTemporaryRedirect)
			h.emit(r, blobEvent(ActionPull, rt.name, info))
			return
		}
	}
	hdr.Set("Content-Length", itoa(length))
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	rc, err := h.reg.ReadBlob(r.Context(), d, start)
	if err != nil {
		hdr.Del("Content-Length")
		hdr.Del("Content-Range")
		h.writeError(w, r, err)
		return
	}
	defer rc.Close()
	w.WriteHeader(status)
	// io.CopyN over an *os.File ends in the connection's ReadFrom, which
	// uses sendfile: the bytes never pass through user space.
	if _, err := io.CopyN(w, rc, length); err != nil {
		h.logger(r).DebugContext(r.Context(), "blob transfer cut short", "digest", d, "err", err)
	}
	// After the transfer, whatever its outcome, as registry:2 does.
	h.emit(r, blobEvent(ActionPull, rt.name, info))
}

// blobEvent describes a push, pull or mount of a blob into repo.
func blobEvent(action, repo string, info content.BlobInfo) Event {
	return Event{Action: action, Repository: repo, Digest: info.Digest, MediaType: blobMediaType, Size: info.Size}
}

// parseRange understands one "bytes=" range (first-last, first-, -suffix),
// which is all registry clients send. It returns the start and length.
func parseRange(spec string, size int64) (start, length int64, ok bool) {
	rest, found := strings.CutPrefix(spec, "bytes=")
	if !found || strings.Contains(rest, ",") {
		return 0, 0, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(rest), "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // suffix: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, false
		}
		n = min(n, size)
		return size - n, n, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 || s >= size {
		return 0, 0, false
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || e < s {
			return 0, 0, false
		}
		e = min(e, size-1)
	}
	return s, e - s + 1, true
}

func (h *Handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := content.ParseDigest(rt.arg)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.reg.DeleteBlob(r.Context(), rt.name, d); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	h.emit(r, Event{Action: ActionDelete, Repository: rt.name, Digest: d})
}

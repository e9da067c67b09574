package api

import (
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/content"
)

func (h *Handler) getManifest(w http.ResponseWriter, r *http.Request, rt route) {
	var m content.Manifest
	var err error
	if r.Method == http.MethodHead {
		m, err = h.reg.StatManifest(r.Context(), rt.name, rt.arg)
	} else {
		m, err = h.reg.GetManifest(r.Context(), rt.name, rt.arg)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	etag := `"` + string(m.Digest) + `"`
	hdr := w.Header()
	hdr.Set("Content-Type", m.MediaType)
	hdr.Set("Docker-Content-Digest", string(m.Digest))
	hdr.Set("ETag", etag)
	hdr.Set("Content-Length", itoa(m.Size))
	if match := r.Header.Get("If-None-Match"); match != "" && match == etag {
		w.WriteHeader(http.StatusNotModified)
		if r.Method != http.MethodHead {
			h.emit(r, manifestEvent(ActionPull, rt, m)) // registry:2 counts a revalidation as a pull
		}
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(m.Body)
		h.emit(r, manifestEvent(ActionPull, rt, m))
	}
}

// manifestEvent describes a push or pull of m by rt's reference.
func manifestEvent(action string, rt route, m content.Manifest) Event {
	e := Event{Action: action, Manifest: true, Repository: rt.name, Digest: m.Digest, MediaType: m.MediaType, Size: m.Size, Body: m.Body}
	if !content.IsDigestReference(rt.arg) {
		e.Tag = rt.arg
	}
	return e
}

func (h *Handler) putManifest(w http.ResponseWriter, r *http.Request, rt route) {
	limit := h.reg.MaxManifestSize()
	if r.ContentLength > limit {
		h.writeError(w, r, errorf(content.CodeTooLarge, "manifest is "+itoa(r.ContentLength)+" bytes, over the limit of "+itoa(limit)))
		return
	}
	// Read one byte past the limit to tell "exactly at" from "over".
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		h.writeError(w, r, errorf(content.CodeManifestInvalid, "reading manifest body: "+err.Error()))
		return
	}
	if int64(len(body)) > limit {
		h.writeError(w, r, errorf(content.CodeTooLarge, "manifest is over the limit of "+itoa(limit)+" bytes"))
		return
	}
	m, err := h.reg.PutManifest(r.Context(), rt.name, rt.arg, r.Header.Get("Content-Type"), body)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set("Location", h.urlBase+"/v2/"+rt.name+"/manifests/"+string(m.Digest))
	hdr.Set("Docker-Content-Digest", string(m.Digest))
	if m.Subject != "" {
		hdr.Set("OCI-Subject", string(m.Subject))
	}
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	m.Body = body
	h.emit(r, manifestEvent(ActionPush, rt, m))
}

func (h *Handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) {
	if err := h.reg.DeleteManifest(r.Context(), rt.name, rt.arg); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	// As in registry:2: a digest names the revision deleted, a tag the tag.
	e := Event{Action: ActionDelete, Manifest: true, Repository: rt.name}
	if content.IsDigestReference(rt.arg) {
		e.Digest = digest.Digest(rt.arg)
	} else {
		e.Tag = rt.arg
	}
	h.emit(r, e)
}

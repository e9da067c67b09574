package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/internal/content"
)

func (h *Handler) uploadLocation(name, id string) string {
	return h.urlBase + "/v2/" + name + "/blobs/uploads/" + id
}

func (h *Handler) blobLocation(name string, d string) string {
	return h.urlBase + "/v2/" + name + "/blobs/" + d
}

// uploadAccepted answers a request that leaves an upload open.
func (h *Handler) uploadAccepted(w http.ResponseWriter, u content.Upload, status int) {
	hdr := w.Header()
	hdr.Set("Location", h.uploadLocation(u.Repo, u.ID))
	hdr.Set("Docker-Upload-UUID", u.ID)
	end := u.Size - 1
	if end < 0 {
		end = 0
	}
	hdr.Set("Range", "0-"+itoa(end))
	hdr.Set("Content-Length", "0")
	w.WriteHeader(status)
}

func (h *Handler) blobCreated(w http.ResponseWriter, name string, info content.BlobInfo) {
	hdr := w.Header()
	hdr.Set("Location", h.blobLocation(name, string(info.Digest)))
	hdr.Set("Docker-Content-Digest", string(info.Digest))
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (h *Handler) startUpload(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		d, err := content.ParseDigest(mount)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		from := q.Get("from")
		if from != "" {
			if err := content.ValidateName(from); err != nil {
				h.writeError(w, r, err)
				return
			}
		}
		info, mounted, err := h.reg.MountBlob(ctx, rt.name, from, d)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if mounted {
			h.blobCreated(w, rt.name, info)
			e := blobEvent(ActionMount, rt.name, info)
			e.FromRepository = from
			h.emit(r, e)
			return
		}
		// Nothing to mount: fall through to an ordinary upload (202).
	} else if dg := q.Get("digest"); dg != "" {
		d, err := content.ParseDigest(dg)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		info, err := h.reg.PutBlob(ctx, rt.name, d, r.Body)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.blobCreated(w, rt.name, info)
		h.emit(r, blobEvent(ActionPush, rt.name, info))
		return
	}
	u, err := h.reg.StartUpload(ctx, rt.name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.uploadAccepted(w, u, http.StatusAccepted)
}

func (h *Handler) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) {
	u, err := h.reg.UploadStatus(r.Context(), rt.name, rt.arg)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.uploadAccepted(w, u, http.StatusNoContent)
}

// chunkStart reads the Content-Range of an upload chunk ("first-last", as
// the spec writes it; "bytes first-last/total" is accepted too). It returns
// -1 when there is none.
func chunkStart(r *http.Request) (int64, error) {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return -1, nil
	}
	spec := strings.TrimPrefix(cr, "bytes ")
	spec, _, _ = strings.Cut(spec, "/")
	first, last, ok := strings.Cut(spec, "-")
	s, err1 := strconv.ParseInt(first, 10, 64)
	e, err2 := strconv.ParseInt(last, 10, 64)
	if !ok || err1 != nil || err2 != nil || s < 0 || e < s {
		return 0, &content.Error{Code: content.CodeRangeInvalid, Message: "malformed Content-Range " + strconv.Quote(cr)}
	}
	if r.ContentLength >= 0 && r.ContentLength != e-s+1 {
		return 0, &content.Error{Code: content.CodeSizeInvalid, Message: "Content-Range " + strconv.Quote(cr) + " does not match Content-Length " + itoa(r.ContentLength)}
	}
	return s, nil
}

func (h *Handler) patchUpload(w http.ResponseWriter, r *http.Request, rt route) {
	start, err := chunkStart(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	u, err := h.reg.AppendUpload(r.Context(), rt.name, rt.arg, start, r.Body)
	if err != nil {
		h.uploadError(w, r, u, err)
		return
	}
	h.uploadAccepted(w, u, http.StatusAccepted)
}

// uploadError reports a failed chunk; a 416 also says where the upload ends
// so the client can resume from there.
func (h *Handler) uploadError(w http.ResponseWriter, r *http.Request, u content.Upload, err error) {
	if u.ID != "" {
		w.Header().Set("Location", h.uploadLocation(u.Repo, u.ID))
		w.Header().Set("Docker-Upload-UUID", u.ID)
		w.Header().Set("Range", "0-"+itoa(max(u.Size-1, 0)))
	}
	h.writeError(w, r, err)
}

func (h *Handler) finishUpload(w http.ResponseWriter, r *http.Request, rt route) {
	dg := r.URL.Query().Get("digest")
	if dg == "" {
		h.writeError(w, r, errorf(content.CodeDigestInvalid, "the digest query parameter is required to finish an upload"))
		return
	}
	d, err := content.ParseDigest(dg)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	start, err := chunkStart(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	body := r.Body
	if r.ContentLength == 0 {
		body = nil
	}
	info, err := h.reg.FinishUpload(r.Context(), rt.name, rt.arg, start, body, d)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.blobCreated(w, rt.name, info)
	h.emit(r, blobEvent(ActionPush, rt.name, info))
}

func (h *Handler) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) {
	if err := h.reg.CancelUpload(r.Context(), rt.name, rt.arg); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}

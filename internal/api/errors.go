package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/logctx"
)

// errorBody is the spec's error envelope.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// statusOf maps a spec code to its HTTP status (distribution spec, "Error
// Codes", plus the statuses the conformance suite expects).
func statusOf(code content.Code) (int, content.Code) {
	switch code {
	case content.CodeBlobUnknown, content.CodeBlobUploadUnknown,
		content.CodeManifestUnknown, content.CodeNameUnknown:
		return http.StatusNotFound, code
	case content.CodeUnsupported:
		return http.StatusMethodNotAllowed, code
	case content.CodeDenied:
		return http.StatusForbidden, code
	case content.CodeRangeInvalid:
		return http.StatusRequestedRangeNotSatisfiable, content.CodeBlobUploadInvalid
	case content.CodeTooLarge:
		return http.StatusRequestEntityTooLarge, content.CodeManifestInvalid
	default:
		return http.StatusBadRequest, code
	}
}

// writeError answers with the spec's JSON error body. Errors that are not
// client errors are logged with their detail and reported without it, so
// storage paths and internals never reach the client.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *content.Error
	if !errors.As(err, &ce) {
		status := http.StatusInternalServerError
		if errors.Is(err, context.Canceled) {
			status = 499 // client went away; only the log sees this
		}
		h.logger(r).LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		writeJSONError(w, status, "UNKNOWN", "internal server error", nil)
		return
	}
	status, code := statusOf(ce.Code)
	writeJSONError(w, status, string(code), ce.Message, ce.Detail)
}

// logger is the request's logger from its context (carrying the request id
// the server's middleware gave it), or the handler's own logger.
func (h *Handler) logger(r *http.Request) *slog.Logger {
	return logctx.FromContextOr(r.Context(), h.log)
}

func writeJSONError(w http.ResponseWriter, status int, code, message string, detail any) {
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: code, Message: message, Detail: detail}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", itoa(int64(len(body))))
	w.WriteHeader(status)
	w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "UNKNOWN", "internal server error", nil)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", itoa(int64(len(body))))
	w.WriteHeader(status)
	w.Write(body)
}

func errorf(code content.Code, msg string) error { return &content.Error{Code: code, Message: msg} }

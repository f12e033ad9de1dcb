package api

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/protocol/spec"
)

// Workloads manages workloads for the API. The bridge's controller
// implements it.
type Workloads interface {
	// Apply creates or updates a workload from a validated document and
	// reports whether it was created. An error matching spec.ErrInvalid
	// is the document's fault.
	Apply(w *spec.Workload) (apiv1.Workload, bool, error)
	// List describes every workload, sorted by name.
	List() apiv1.WorkloadList
	// Get describes one workload, or fails with ErrNotFound.
	Get(name string) (apiv1.Workload, error)
	// Delete starts deleting a workload and describes it, or fails with
	// ErrNotFound.
	Delete(name string) (apiv1.Workload, error)
	// Logs fetches the last tail lines of a workload's output from node
	// ("" for the node of its first running replica).
	Logs(ctx context.Context, name, node string, tail int) (apiv1.Logs, error)
}

// Errors a Workloads implementation returns for the API to answer with
// the matching status (ErrNotFound: 404).
var (
	// ErrConflict: 409, e.g. the node is offline or nothing runs.
	ErrConflict = errors.New("conflict")
	// ErrTimeout: 504, a node did not answer in time.
	ErrTimeout = errors.New("timeout")
	// ErrUnavailable: 503, the bridge cannot do it now.
	ErrUnavailable = errors.New("unavailable")
	// ErrBadGateway: 502, a node answered with an error.
	ErrBadGateway = errors.New("bad gateway")
)

// MaxLogLines bounds ?tail= of the logs route.
const MaxLogLines = 10000

// workloadRoutes registers the workload routes:
//
//	POST   /api/v1/workloads              Workload (YAML or JSON) -> 201 or 200 apiv1.Workload
//	GET    /api/v1/workloads              -> apiv1.WorkloadList
//	GET    /api/v1/workloads/{name}       -> apiv1.Workload
//	DELETE /api/v1/workloads/{name}       -> apiv1.Workload, replicas stopping
//	GET    /api/v1/workloads/{name}/logs  ?node=N&tail=N -> apiv1.Logs
//
// Without Workloads they answer 503.
func (s *Server) workloadRoutes(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/workloads", s.auth(s.withWorkloads(s.applyWorkload)))
	mux.Handle("GET /api/v1/workloads", s.auth(s.withWorkloads(s.listWorkloads)))
	mux.Handle("GET /api/v1/workloads/{name}", s.auth(s.withWorkloads(s.getWorkload)))
	mux.Handle("DELETE /api/v1/workloads/{name}", s.auth(s.withWorkloads(s.deleteWorkload)))
	mux.Handle("GET /api/v1/workloads/{name}/logs", s.auth(s.withWorkloads(s.workloadLogs)))
}

func (s *Server) withWorkloads(next func(Workloads, http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Workloads == nil {
			writeError(w, http.StatusServiceUnavailable, "workloads are not configured")
			return
		}
		next(s.cfg.Workloads, w, r)
	})
}

// documentTypes are the media types a workload document may be sent as;
// the content decides between YAML and JSON.
var documentTypes = map[string]bool{
	"application/json": true, "application/yaml": true, "application/x-yaml": true,
	"text/yaml": true, "text/x-yaml": true, "text/plain": true, "application/octet-stream": true,
}

func (s *Server) applyWorkload(ws Workloads, w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !documentTypes[mt] {
			writeError(w, http.StatusUnsupportedMediaType,
				fmt.Sprintf("Content-Type %q: send the workload as application/yaml or application/json", ct))
			return
		}
	}
	doc, code, err := readPlanWorkload(w, r)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	v, created, err := ws.Apply(doc)
	if err != nil {
		s.workloadError(w, "apply workload "+doc.Metadata.Name, err)
		return
	}
	code = http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, v)
}

func (s *Server) listWorkloads(ws Workloads, w http.ResponseWriter, _ *http.Request) {
	list := ws.List()
	if list.Items == nil {
		list.Items = []apiv1.Workload{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getWorkload(ws Workloads, w http.ResponseWriter, r *http.Request) {
	v, err := ws.Get(r.PathValue("name"))
	if err != nil {
		s.workloadError(w, "get workload", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) deleteWorkload(ws Workloads, w http.ResponseWriter, r *http.Request) {
	v, err := ws.Delete(r.PathValue("name"))
	if err != nil {
		s.workloadError(w, "delete workload", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) workloadLogs(ws Workloads, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tail := 0
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxLogLines {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("tail=%q: want a number of lines from 0 to %d", v, MaxLogLines))
			return
		}
		tail = n
	}
	logs, err := ws.Logs(r.Context(), r.PathValue("name"), q.Get("node"), tail)
	if err != nil {
		s.workloadError(w, "workload logs", err)
		return
	}
	writeJSON(w, http.StatusOK, logs)
}

// workloadError answers err with the status its kind calls for.
func (s *Server) workloadError(w http.ResponseWriter, op string, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, spec.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, ErrTimeout):
		code = http.StatusGatewayTimeout
	case errors.Is(err, ErrUnavailable):
		code = http.StatusServiceUnavailable
	case errors.Is(err, ErrBadGateway):
		code = http.StatusBadGateway
	default:
		s.log.Warn(op+" failed", "error", err)
	}
	writeError(w, code, err.Error())
}

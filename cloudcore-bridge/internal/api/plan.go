package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/skyedge/skyedge/cloudcore-bridge/apiv1"
	"github.com/skyedge/skyedge/protocol/spec"
)

// Planner answers the placement routes. The bridge's controller
// implements it; the API only decodes requests and encodes answers.
type Planner interface {
	// Plan places w on the fleet as it is now without applying anything.
	// An error matching spec.ErrInvalid is the document's fault.
	Plan(w *spec.Workload) (apiv1.Plan, error)
	// Explain returns the latest placement decision of the workload
	// called name, or an error matching ErrNotFound.
	Explain(name string) (apiv1.Plan, error)
	// Sites lists the edge nodes and cloud regions.
	Sites() apiv1.SiteList
	// Placements is the residency audit, of one workload when workload
	// is not empty.
	Placements(workload string) apiv1.PlacementList
}

// ErrNotFound is matched by a Planner's errors about something that does
// not exist; the API answers 404.
var ErrNotFound = errors.New("not found")

// planRoutes registers the placement routes:
//
//	POST /api/v1/plan                    Workload (YAML or JSON) -> apiv1.Plan, nothing applied
//	GET  /api/v1/workloads/{name}/explain -> apiv1.Plan of the latest decision
//	GET  /api/v1/sites                   -> apiv1.SiteList
//	GET  /api/v1/placements[?workload=N] -> apiv1.PlacementList
//
// Without a Planner they answer 503.
func (s *Server) planRoutes(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/plan", s.auth(s.withPlanner(s.postPlan)))
	mux.Handle("GET /api/v1/workloads/{name}/explain", s.auth(s.withPlanner(s.explainWorkload)))
	mux.Handle("GET /api/v1/sites", s.auth(s.withPlanner(s.listSites)))
	mux.Handle("GET /api/v1/placements", s.auth(s.withPlanner(s.listPlacements)))
}

// withPlanner answers 503 when no Planner is configured.
func (s *Server) withPlanner(next func(Planner, http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Planner == nil {
			writeError(w, http.StatusServiceUnavailable, "placement is not configured")
			return
		}
		next(s.cfg.Planner, w, r)
	})
}

func (s *Server) postPlan(p Planner, w http.ResponseWriter, r *http.Request) {
	wl, code, err := readPlanWorkload(w, r)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	plan, err := p.Plan(wl)
	switch {
	case errors.Is(err, spec.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		s.log.Warn("plan failed", "workload", wl.Metadata.Name, "error", err)
		writeError(w, http.StatusInternalServerError, "plan workload "+wl.Metadata.Name+": "+err.Error())
	default:
		writeJSON(w, http.StatusOK, plan)
	}
}

// readPlanWorkload reads, parses and validates the Workload document in
// r's body; on failure it returns the status to answer with.
func readPlanWorkload(w http.ResponseWriter, r *http.Request) (*spec.Workload, int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, spec.MaxDocumentSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge,
				fmt.Errorf("workload document over the %d-byte limit", spec.MaxDocumentSize)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read workload document: %w", err)
	}
	wl, err := spec.ParseWorkload(body)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	if err := wl.Validate(); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("workload %q: %w", wl.Metadata.Name, err)
	}
	return wl, 0, nil
}

func (s *Server) explainWorkload(p Planner, w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	plan, err := p.Explain(name)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("workload %q not found", name))
	case err != nil:
		s.log.Warn("explain failed", "workload", name, "error", err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("explain workload %q: %v", name, err))
	default:
		writeJSON(w, http.StatusOK, plan)
	}
}

func (s *Server) listSites(p Planner, w http.ResponseWriter, _ *http.Request) {
	list := p.Sites()
	if list.Items == nil {
		list.Items = []apiv1.Site{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) listPlacements(p Planner, w http.ResponseWriter, r *http.Request) {
	list := p.Placements(r.URL.Query().Get("workload"))
	if list.Items == nil {
		list.Items = []apiv1.PlacementRecord{}
	}
	writeJSON(w, http.StatusOK, list)
}

package agent

import (
	"context"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/skyedge/skyedge/protocol"
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// maxLogLine bounds one line of a logs response; longer lines are cut.
const maxLogLine = 8 << 10

// logsSlack covers the growth of the length prefixes around the lines
// (the response's inside the envelope) as lines are added.
const logsSlack = 16

// enqueueLogs is called by the link's dispatcher; it never blocks. A
// request dropped on a full queue gets no answer: the caller times out
// and asks again.
func (w *workloads) enqueueLogs(req *pb.LogsRequest) {
	select {
	case w.logsIn <- req:
	default:
		w.stats.logsDropped.Add(1)
		w.log.Debug("logs request dropped: too many pending", "request_id", req.GetRequestId())
	}
}

// logsLoop answers logs requests one at a time until ctx is done.
func (w *workloads) logsLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-w.logsIn:
			env := w.stamper.Stamp(&pb.Envelope{Body: &pb.Envelope_LogsResponse{LogsResponse: w.logsResponse(req)}})
			fitLogs(env)
			if err := w.send(ctx, env); err != nil {
				w.log.Debug("logs response not sent", "request_id", req.GetRequestId(), "error", err)
				continue
			}
			w.stats.logsServed.Add(1)
		}
	}
}

// logsResponse reads the lines req asks for: the last tail_lines
// (DefaultLogTail when 0, at most MaxLogTail) of the workload's output.
// Truncated is set when older lines exist.
func (w *workloads) logsResponse(req *pb.LogsRequest) *pb.LogsResponse {
	resp := &pb.LogsResponse{RequestId: req.GetRequestId(), Workload: req.GetWorkload()}
	if w.r == nil {
		resp.Error = "workloads are disabled on this node"
		return resp
	}
	tail := int(req.GetTailLines())
	if tail == 0 {
		tail = DefaultLogTail
	}
	tail = min(tail, MaxLogTail)
	lines, err := w.r.Logs(req.GetWorkload(), tail+1) // one more says whether older ones exist
	if err != nil {
		resp.Error = clip(err.Error())
		return resp
	}
	if len(lines) > tail {
		lines, resp.Truncated = lines[len(lines)-tail:], true
	}
	for i, l := range lines {
		lines[i] = cleanLine(l)
	}
	resp.Lines = lines
	return resp
}

// fitLogs drops the oldest lines of env's logs response until env fits
// protocol.MaxPayload, and marks the response truncated when it does.
func fitLogs(env *pb.Envelope) {
	resp := env.GetLogsResponse()
	lines := resp.Lines
	resp.Lines = nil
	budget := protocol.MaxPayload - proto.Size(env) - logsSlack
	keep := len(lines)
	for i := len(lines) - 1; i >= 0; i-- {
		cost := 1 + protowire.SizeBytes(len(lines[i]))
		if cost > budget {
			break
		}
		budget -= cost
		keep = i
	}
	if keep > 0 {
		resp.Truncated = true
	}
	resp.Lines = lines[keep:]
}

// cleanLine makes a line valid UTF-8 (protobuf strings must be) of at
// most maxLogLine bytes.
func cleanLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxLogLine {
		return s
	}
	s = s[:maxLogLine]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + " [line cut]"
}

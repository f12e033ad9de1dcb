package agent

import (
	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// message is the link's OnMessage: every message from the cloud is
// contact; desired state and logs requests go to the workloads, acks and
// welcomes to the session.
func (a *Agent) message(env *pb.Envelope) {
	a.work.contact.note(a.cfg.Clock.Now())
	switch b := env.GetBody().(type) {
	case *pb.Envelope_Desired:
		a.work.enqueueDesired(b.Desired)
	case *pb.Envelope_LogsRequest:
		a.work.enqueueLogs(b.LogsRequest)
	case *pb.Envelope_Welcome:
		a.work.welcome(b.Welcome)
		a.session.message(env)
	default:
		a.session.message(env)
	}
}

// connected is the link's OnConnected.
func (a *Agent) connected() {
	a.work.contact.note(a.cfg.Clock.Now())
	a.session.connected()
}

// disconnected is the link's OnDisconnected: the silence that
// disconnect.stopAfter measures starts now.
func (a *Agent) disconnected() {
	a.work.contact.note(a.cfg.Clock.Now())
	a.session.disconnected()
}

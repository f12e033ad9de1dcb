package drain

import (
	"math"
	"time"

	"github.com/skyedge/skyedge/protocol"
)

// Profile limits how fast a drainer sends.
type Profile struct {
	Name string
	// MsgsPerSec and BytesPerSec are sustained rates; 0 is unlimited.
	// Bursts are one second's worth (at least one largest payload).
	MsgsPerSec  float64
	BytesPerSec float64
}

// Profiles.
var (
	// AWSIoTCore keeps within AWS IoT Core's per-connection limits: 100
	// publishes and 512 KiB per second.
	AWSIoTCore = Profile{Name: "aws-iot-core", MsgsPerSec: 100, BytesPerSec: 512 << 10}
	// Unlimited does not pace.
	Unlimited = Profile{Name: "unlimited"}
)

// bucket is a token bucket on the injected clock.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate, burst float64, now time.Time) bucket {
	return bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

func (b *bucket) refill(now time.Time) {
	if b.rate == 0 {
		return
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(b.burst, b.tokens+dt*b.rate)
	}
	b.last = now
}

// wait is how long until n tokens are available.
func (b *bucket) wait(now time.Time, n float64) time.Duration {
	if b.rate == 0 {
		return 0
	}
	b.refill(now)
	n = math.Min(n, b.burst)
	if b.tokens >= n {
		return 0
	}
	return time.Duration(math.Ceil((n - b.tokens) / b.rate * float64(time.Second)))
}

func (b *bucket) take(n float64) {
	if b.rate != 0 {
		b.tokens -= math.Min(n, b.burst)
	}
}

// pacer paces messages and bytes together.
type pacer struct {
	msgs, bytes bucket
}

func newPacer(p Profile, now time.Time) pacer {
	return pacer{
		msgs:  newBucket(p.MsgsPerSec, math.Max(p.MsgsPerSec, 1), now),
		bytes: newBucket(p.BytesPerSec, math.Max(p.BytesPerSec, protocol.MaxPayload), now),
	}
}

// reserve takes a message of size bytes if both buckets allow it now, and
// otherwise returns how long to wait.
func (p *pacer) reserve(now time.Time, size int) time.Duration {
	w := max(p.msgs.wait(now, 1), p.bytes.wait(now, float64(size)))
	if w > 0 {
		return w
	}
	p.msgs.take(1)
	p.bytes.take(float64(size))
	return 0
}

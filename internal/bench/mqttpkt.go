package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// The few MQTT 3.1.1 packets the pipelined publisher speaks.
const (
	pktConnect    = 1
	pktConnack    = 2
	pktPublish    = 3
	pktPuback     = 4
	pktSubscribe  = 8
	pktSuback     = 9
	pktPingresp   = 13
	pktDisconnect = 14
)

// maxRemaining bounds the packets the publisher reads: it expects only
// CONNACK, PUBACK and PINGRESP.
const maxRemaining = 1 << 16

// appendRemaining appends MQTT's variable-length remaining length.
func appendRemaining(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	return append(append(b, byte(len(s)>>8), byte(len(s))), s...)
}

// connectPacket is a clean-session CONNECT for clientID.
func connectPacket(clientID string, keepAliveS uint16) []byte {
	var v []byte
	v = appendString(v, "MQTT")
	v = append(v, 4, 0x02, byte(keepAliveS>>8), byte(keepAliveS)) // level 4, clean session
	v = appendString(v, clientID)
	return append(appendRemaining([]byte{pktConnect << 4}, len(v)), v...)
}

// appendPublish appends a QoS 1 PUBLISH of payload on topic with id.
func appendPublish(b []byte, topic string, id uint16, payload []byte) []byte {
	b = append(b, pktPublish<<4|0x02)
	b = appendRemaining(b, 2+len(topic)+2+len(payload))
	b = appendString(b, topic)
	b = append(b, byte(id>>8), byte(id))
	return append(b, payload...)
}

// subscribePacket subscribes to filter at QoS 1.
func subscribePacket(id uint16, filter string) []byte {
	v := []byte{byte(id >> 8), byte(id)}
	v = appendString(v, filter)
	v = append(v, 1)
	return append(appendRemaining([]byte{pktSubscribe<<4 | 0x02}, len(v)), v...)
}

// appendPuback appends the PUBACK of packet id.
func appendPuback(b []byte, id uint16) []byte {
	return append(b, pktPuback<<4, 2, byte(id>>8), byte(id))
}

// publishID returns the packet ID of an incoming PUBLISH with fixed
// header h and body, and whether it needs a PUBACK (QoS 1).
func publishID(h byte, body []byte) (uint16, bool, error) {
	if (h>>1)&3 == 0 {
		return 0, false, nil
	}
	if len(body) < 2 {
		return 0, false, errors.New("short PUBLISH")
	}
	n := int(body[0])<<8 | int(body[1])
	if len(body) < 2+n+2 {
		return 0, false, errors.New("short PUBLISH")
	}
	return uint16(body[2+n])<<8 | uint16(body[3+n]), true, nil
}

var disconnectPacket = []byte{pktDisconnect << 4, 0}

// readPacket reads one packet and returns its fixed header's first byte
// (type << 4 | flags) and its body (into buf when it fits).
func readPacket(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mult
		if d&0x80 == 0 {
			break
		}
		if mult *= 128; i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	if n > maxRemaining {
		return 0, nil, fmt.Errorf("packet of %d bytes from the broker, more than expected", n)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return h, buf, nil
}

// connackError turns a CONNACK's return code into an error.
func connackError(body []byte) error {
	if len(body) != 2 {
		return fmt.Errorf("CONNACK of %d bytes", len(body))
	}
	switch body[1] {
	case 0:
		return nil
	case 4:
		return errors.New("connection refused: bad user name or password")
	case 5:
		return errors.New("connection refused: not authorised")
	}
	return fmt.Errorf("connection refused: return code %d", body[1])
}

// Package mqttwire encodes and decodes the few MQTT 3.1.1 packets the
// load generators speak without a client library: CONNECT, SUBSCRIBE,
// QoS 1 PUBLISH and PUBACK, DISCONNECT, and reading whatever the broker
// sends back. A load generator that builds each packet once and patches
// its packet ID costs a fraction of a client library per message, so one
// machine can drive a fleet.
package mqttwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Control packet types (the high nibble of a packet's first byte).
const (
	Connect    = 1
	Connack    = 2
	Publish    = 3
	Puback     = 4
	Subscribe  = 8
	Suback     = 9
	Pingresp   = 13
	Disconnect = 14
)

// DisconnectPacket is a DISCONNECT.
var DisconnectPacket = []byte{Disconnect << 4, 0}

// AppendLength appends n as MQTT's variable-length remaining length.
func AppendLength(b []byte, n int) []byte {
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

// AppendString appends s with its 16-bit length prefix.
func AppendString(b []byte, s string) []byte {
	return append(append(b, byte(len(s)>>8), byte(len(s))), s...)
}

// ConnectPacket is a clean-session CONNECT for clientID.
func ConnectPacket(clientID string, keepAliveS uint16) []byte {
	var v []byte
	v = AppendString(v, "MQTT")
	v = append(v, 4, 0x02, byte(keepAliveS>>8), byte(keepAliveS)) // level 4, clean session
	v = AppendString(v, clientID)
	return append(AppendLength([]byte{Connect << 4}, len(v)), v...)
}

// AppendPublish appends a QoS 1 PUBLISH of payload on topic with packet
// ID id.
func AppendPublish(b []byte, topic string, id uint16, payload []byte) []byte {
	b = append(b, Publish<<4|0x02)
	b = AppendLength(b, 2+len(topic)+2+len(payload))
	b = AppendString(b, topic)
	b = append(b, byte(id>>8), byte(id))
	return append(b, payload...)
}

// PublishPacket is a QoS 1 PUBLISH of payload on topic with packet ID 0;
// the ID's two bytes are at idOffset, to be patched before each send.
func PublishPacket(topic string, payload []byte) (pkt []byte, idOffset int) {
	pkt = AppendPublish(nil, topic, 0, payload)
	return pkt, len(pkt) - len(payload) - 2
}

// SubscribePacket subscribes to filter at QoS 1 with packet ID id.
func SubscribePacket(id uint16, filter string) []byte {
	v := []byte{byte(id >> 8), byte(id)}
	v = AppendString(v, filter)
	v = append(v, 1)
	return append(AppendLength([]byte{Subscribe<<4 | 0x02}, len(v)), v...)
}

// AppendPuback appends the PUBACK of packet id.
func AppendPuback(b []byte, id uint16) []byte {
	return append(b, Puback<<4, 2, byte(id>>8), byte(id))
}

// PublishID returns the packet ID of an incoming PUBLISH with first byte
// h and body, and whether it needs a PUBACK (QoS 1).
func PublishID(h byte, body []byte) (uint16, bool, error) {
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

// ReadPacket reads one packet and returns its first byte (type << 4 |
// flags) and its body, read into buf when it fits. A packet longer than
// limit bytes (0: no limit) is an error.
func ReadPacket(r *bufio.Reader, buf []byte, limit int) (byte, []byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return 0, nil, errors.New("malformed remaining length")
		}
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	if limit > 0 && n > limit {
		return 0, nil, fmt.Errorf("packet of %d bytes from the broker, more than the %d expected", n, limit)
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

// ConnackError turns a CONNACK body into an error; nil when accepted.
func ConnackError(body []byte) error {
	if len(body) != 2 {
		return fmt.Errorf("CONNACK of %d bytes, want 2", len(body))
	}
	switch body[1] {
	case 0:
		return nil
	case 4:
		return errors.New("connection refused by the broker: bad user name or password (CONNACK return code 4)")
	case 5:
		return errors.New("connection refused by the broker: not authorised (CONNACK return code 5)")
	}
	return fmt.Errorf("connection refused by the broker (CONNACK return code %d)", body[1])
}

package main

import "bytes"

// frame holds the few fields the bench needs from a server frame. Byte
// slices alias the scanned buffer (raw JSON string contents, escapes not
// decoded: every value the bench compares against is plain ASCII), so a
// frame is valid only until that buffer is reused. Absent fields are nil.
type frame struct {
	typ       []byte
	topic     []byte
	requestID []byte
	status    []byte
	msg       []byte // info frames: "msg"
	errCode   []byte // error.code
	errMsg    []byte // error.message
	msgID     []byte // message.id
	payload   []byte // message.payload: the raw JSON value
	bench     benchPayload
	hasBench  bool // payload carried all of the bench's fields
	seq       int64
	hasSeq    bool // "seq" present as a plain non-negative integer
}

// scanFrame extracts frame fields from one JSON object in a single pass
// without allocating: decoding every event with encoding/json would cost
// the bench more CPU than the server spends delivering it. The scanner is
// lenient (it does not validate what it skips) but never reads out of
// bounds; it reports false when b is not an object it can walk. A
// repeated member replaces the earlier one, as in encoding/json.
func scanFrame(b []byte, f *frame) bool {
	*f = frame{}
	i, ok := expectByte(b, skipSpace(b, 0), '{')
	if !ok {
		return false
	}
	m := members{b: b, i: i}
	for {
		key, more := m.next()
		if !more {
			return m.end
		}
		i, ok := m.i, true
		switch string(key) { // no allocation: the compiler special-cases string(b) in a switch
		case "type":
			i, ok = stringField(b, i, &f.typ)
		case "topic":
			i, ok = stringField(b, i, &f.topic)
		case "request_id":
			i, ok = stringField(b, i, &f.requestID)
		case "status":
			i, ok = stringField(b, i, &f.status)
		case "msg":
			i, ok = stringField(b, i, &f.msg)
		case "seq":
			i, ok = intField(b, i, &f.seq, &f.hasSeq)
		case "message":
			i, ok = scanMessage(b, i, f)
		case "error":
			i, ok = scanError(b, i, f)
		default:
			i, ok = skipValue(b, i)
		}
		if !ok {
			return false
		}
		m.i = i
	}
}

func scanMessage(b []byte, i int, f *frame) (int, bool) {
	f.msgID, f.payload, f.bench, f.hasBench = nil, nil, benchPayload{}, false
	if i >= len(b) || b[i] != '{' {
		return skipValue(b, i)
	}
	m := members{b: b, i: i + 1}
	for {
		key, more := m.next()
		if !more {
			return m.i, m.end
		}
		i, ok := m.i, true
		switch string(key) {
		case "id":
			i, ok = stringField(b, i, &f.msgID)
		case "payload":
			i, ok = payloadField(b, i, &f.bench, &f.hasBench)
			if ok {
				f.payload = b[m.i:i]
			}
		default:
			i, ok = skipValue(b, i)
		}
		if !ok {
			return i, false
		}
		m.i = i
	}
}

func scanError(b []byte, i int, f *frame) (int, bool) {
	f.errCode, f.errMsg = nil, nil
	if i >= len(b) || b[i] != '{' {
		return skipValue(b, i)
	}
	m := members{b: b, i: i + 1}
	for {
		key, more := m.next()
		if !more {
			return m.i, m.end
		}
		i, ok := m.i, true
		switch string(key) {
		case "code":
			i, ok = stringField(b, i, &f.errCode)
		case "message":
			i, ok = stringField(b, i, &f.errMsg)
		default:
			i, ok = skipValue(b, i)
		}
		if !ok {
			return i, false
		}
		m.i = i
	}
}

// benchPayload is what the bench embeds in every message it publishes.
type benchPayload struct {
	topic int64 // "k": topic index within the run
	pub   int64 // "p": publisher index within the topic
	seq   int64 // "s": publisher sequence number, from 1
	sent  int64 // "t": send time, ns since the run's clock base
}

// scanPayload extracts the bench's fields from a payload JSON value. It
// reports false unless the value is an object holding all four as plain
// integers, i.e. unless a bench run published it.
func scanPayload(b []byte, p *benchPayload) bool {
	var has bool
	_, ok := payloadField(b, skipSpace(b, 0), p, &has)
	return ok && has
}

// payloadField reads the payload value at i: the bench fields if it is an
// object (setting *has when all four are there), else just its extent.
func payloadField(b []byte, i int, p *benchPayload, has *bool) (int, bool) {
	*p, *has = benchPayload{}, false
	if i >= len(b) || b[i] != '{' {
		return skipValue(b, i)
	}
	var hk, hp, hs, ht bool
	m := members{b: b, i: i + 1}
	for {
		key, more := m.next()
		if !more {
			*has = m.end && hk && hp && hs && ht
			return m.i, m.end
		}
		i, ok := m.i, true
		if len(key) == 1 {
			switch key[0] {
			case 'k':
				i, ok = intField(b, i, &p.topic, &hk)
			case 'p':
				i, ok = intField(b, i, &p.pub, &hp)
			case 's':
				i, ok = intField(b, i, &p.seq, &hs)
			case 't':
				i, ok = intField(b, i, &p.sent, &ht)
			default:
				i, ok = skipValue(b, i)
			}
		} else {
			i, ok = skipValue(b, i)
		}
		if !ok {
			return i, false
		}
		m.i = i
	}
}

// members iterates over the members of an object. The scanners loop over
// it explicitly rather than taking a callback per member: the indirect
// calls cost a third of the scan time at a million events per second. Start it with i just
// after the '{'; next returns each raw key and leaves i at its value; the
// caller moves i past the value before calling next again. When next
// reports no more members, end says whether the object closed properly
// and i is just after its '}'.
type members struct {
	b   []byte
	i   int
	n   int
	end bool
}

func (m *members) next() ([]byte, bool) {
	b := m.b
	i := skipSpace(b, m.i)
	if i >= len(b) {
		return nil, false
	}
	switch {
	case b[i] == '}':
		m.i, m.end = i+1, true
		return nil, false
	case m.n > 0 && b[i] == ',':
		i = skipSpace(b, i+1)
	case m.n > 0:
		return nil, false
	}
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	e, ok := skipString(b, i)
	if !ok {
		return nil, false
	}
	key := b[i+1 : e-1]
	i = skipSpace(b, e)
	if i >= len(b) || b[i] != ':' {
		return nil, false
	}
	m.i = skipSpace(b, i+1)
	m.n++
	return key, true
}

// stringField stores the raw contents of a string value at i into dst; a
// value of another kind is skipped and leaves dst nil.
func stringField(b []byte, i int, dst *[]byte) (int, bool) {
	if i < len(b) && b[i] == '"' {
		end, ok := skipString(b, i)
		if ok {
			*dst = b[i+1 : end-1]
		}
		return end, ok
	}
	*dst = nil
	return skipValue(b, i)
}

// intField stores a plain non-negative integer (digits only, at most 18 of
// them, so it fits int64) into dst and sets *has; any other value is
// skipped and clears *has.
func intField(b []byte, i int, dst *int64, has *bool) (int, bool) {
	var v int64
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		v = v*10 + int64(b[j]-'0')
		j++
	}
	if j > i && j-i <= 18 && (j == len(b) || isDelim(b[j])) {
		*dst, *has = v, true
		return j, true
	}
	*dst, *has = 0, false
	return skipValue(b, i)
}

func isDelim(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// parseUint parses 1 to 18 ASCII digits.
func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// skipValue returns the offset just after the JSON value starting at i
// (leading space already skipped). Containers are matched by nesting depth
// with strings honoured; their contents are not otherwise validated.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return end, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return i, false
	case '}', ']', ',', ':':
		return i, false
	}
	// A number or literal: runs until a delimiter.
	start := i
	for i < len(b) && !isDelim(b[i]) {
		i++
	}
	return i, i > start
}

// skipString returns the offset just after the string whose opening quote
// is at i. Short strings (keys, ids, timestamps) are walked byte by byte;
// past 16 bytes it jumps between quotes with IndexByte (vectorised), so
// long padding costs little. A quote ends the string unless preceded by an
// odd run of backslashes.
func skipString(b []byte, i int) (int, bool) {
	j := i + 1
	if j < len(b) {
		short := b[j:min(len(b), i+17)]
		for k := 0; k < len(short); k++ {
			switch short[k] {
			case '"':
				return j + k + 1, true
			case '\\':
				k++ // the escaped byte cannot end the string
			}
		}
		j += len(short)
	}
	for j < len(b) {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			break
		}
		q := j + k
		bs := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			bs++
		}
		if bs%2 == 0 {
			return q + 1, true
		}
		j = q + 1
	}
	return len(b), false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func expectByte(b []byte, i int, c byte) (int, bool) {
	if i < len(b) && b[i] == c {
		return i + 1, true
	}
	return i, false
}

// eventPrefix is how the service begins every event of a topic; see
// scanEventFast.
func eventPrefix(topic string) []byte {
	return []byte(`{"type":"event","topic":"` + topic + `","message":{"id":"`)
}

// scanEventFast parses an event laid out exactly as this service encodes
// it, carrying a payload exactly as frameBuilder renders it:
//
//	{"type":"event","topic":T,"message":{"id":UUID,"payload":{"k":..,"p":..,"s":..,"t":..,"x":".."}},"seq":N,...}
//
// It checks bytes in order instead of walking the JSON generically, which
// halves the bench's CPU per delivery at high fan-out. Any difference (a
// field order, headers, escapes) makes it return false, and the caller
// falls back to scanFrame, so it decides nothing scanFrame would decide
// differently. prefix is eventPrefix(topic).
func scanEventFast(b, prefix []byte, f *frame) bool {
	if !bytes.HasPrefix(b, prefix) {
		return false
	}
	i := len(prefix)
	idEnd := i + 36
	if idEnd > len(b) || bytes.IndexByte(b[i:idEnd], '"') >= 0 || bytes.IndexByte(b[i:idEnd], '\\') >= 0 {
		return false
	}
	j, ok := expectLit(b, idEnd, `","payload":`)
	if !ok {
		return false
	}
	payloadStart := j
	var p benchPayload
	if j, ok = fastInt(b, j, `{"k":`, &p.topic); !ok {
		return false
	}
	if j, ok = fastInt(b, j, `,"p":`, &p.pub); !ok {
		return false
	}
	if j, ok = fastInt(b, j, `,"s":`, &p.seq); !ok {
		return false
	}
	if j, ok = fastInt(b, j, `,"t":`, &p.sent); !ok {
		return false
	}
	if j, ok = expectLit(b, j, `,"x":"`); !ok {
		return false
	}
	k := bytes.IndexByte(b[j:], '"')
	if k < 0 || bytes.IndexByte(b[j:j+k], '\\') >= 0 {
		return false
	}
	j += k
	if j, ok = expectLit(b, j, `"}`); !ok {
		return false
	}
	payloadEnd := j
	var seq int64
	if j, ok = fastInt(b, j, `},"seq":`, &seq); !ok {
		return false
	}
	if !fastTail(b, j) {
		return false
	}
	*f = frame{
		typ:      b[9:14], // "event" in the prefix
		topic:    b[len(`{"type":"event","topic":"`) : len(prefix)-len(`","message":{"id":"`)],
		msgID:    b[len(prefix):idEnd],
		payload:  b[payloadStart:payloadEnd],
		bench:    p,
		hasBench: true,
		seq:      seq,
		hasSeq:   true,
	}
	return true
}

// fastTail checks that b[j:] closes the event: the expected `,"ts":"..."}`
// directly, anything else by walking the remaining members.
func fastTail(b []byte, j int) bool {
	if i, ok := expectLit(b, j, `,"ts":"`); ok {
		k := bytes.IndexByte(b[i:], '"')
		if k >= 0 && i+k+2 == len(b) && b[i+k+1] == '}' && bytes.IndexByte(b[i:i+k], '\\') < 0 {
			return true
		}
	}
	m := members{b: b, i: j, n: 1}
	for {
		_, more := m.next()
		if !more {
			return m.end && skipSpace(b, m.i) == len(b)
		}
		var ok bool
		if m.i, ok = skipValue(b, m.i); !ok {
			return false
		}
	}
}

// expectLit checks that lit is at b[i:] and returns the offset after it.
func expectLit(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// fastInt reads lit followed by 1 to 18 digits ending at a delimiter.
func fastInt(b []byte, i int, lit string, dst *int64) (int, bool) {
	i, ok := expectLit(b, i, lit)
	if !ok {
		return i, false
	}
	var v int64
	j := i
	for j < len(b) && j-i < 19 && b[j] >= '0' && b[j] <= '9' {
		v = v*10 + int64(b[j]-'0')
		j++
	}
	if j == i || j-i > 18 || j == len(b) || !isDelim(b[j]) {
		return i, false
	}
	*dst = v
	return j, true
}

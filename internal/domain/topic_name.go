package domain

// MaxTopicNameLen is the longest topic name PROTOCOL.md allows, in bytes (all allowed characters are
// ASCII, so bytes and characters agree).
const MaxTopicNameLen = 255

// TopicName is a validated topic name: 1 to 255 characters from A-Z a-z 0-9 . _ - :.
// The zero value is not a valid name; obtain one only through ParseTopicName.
type TopicName string

// ParseTopicName validates s. Restricting the alphabet keeps every name safe in a URL path, a log line
// and a Redis key, so a topic that can be created can always be deleted again.
func ParseTopicName(s string) (TopicName, error) {
	if s == "" {
		return "", Errorf(KindInvalid, "topic is required")
	}
	if len(s) > MaxTopicNameLen {
		return "", Errorf(KindInvalid, "topic name is %d characters long; the limit is %d", len(s), MaxTopicNameLen)
	}
	for i := 0; i < len(s); i++ {
		if !topicChar(s[i]) {
			return "", Errorf(KindInvalid, "topic name %q has a character outside A-Z a-z 0-9 . _ - :", s)
		}
	}
	return TopicName(s), nil
}

func topicChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '.', c == '_', c == '-', c == ':':
		return true
	}
	return false
}

// String returns the name.
func (n TopicName) String() string { return string(n) }
